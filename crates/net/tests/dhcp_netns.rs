//! dnsmasq serving DHCP reservations on a bridge, against the real kernel,
//! inside network namespaces. Needs root (skipped otherwise, except under CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironidc_net::dhcp::{DhcpConfig, DhcpError, Dnsmasq, Reservation};
use ironidc_net::links::ensure_bridge;
use netns_util::{require_root, veth, Netns};

/// A udhcpc hook that records what the lease carried.
fn write_script(dir: &Path) -> (PathBuf, PathBuf) {
    let out = dir.join("lease.out");
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && echo \"$ip $router $dns\" > {}\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, out)
}

/// Run udhcpc once in `ns`; the lease's "ip router dns" line, if any.
fn udhcpc(ns: &Netns, iface: &str, script: &Path, out: &Path, tries: &str) -> Option<String> {
    let _ = std::fs::remove_file(out);
    let result = ns.exec(&[
        "busybox",
        "udhcpc",
        "-i",
        iface,
        "-n",
        "-q",
        "-t",
        tries,
        "-T",
        "1",
        "-s",
        script.to_str().unwrap(),
    ]);
    let lease = std::fs::read_to_string(out)
        .ok()
        .map(|s| s.trim().to_string());
    assert_eq!(result.status.success(), lease.is_some(), "{result:?}");
    lease
}

fn set_mac(ns: &Netns, iface: &str, mac: &str) {
    ns.exec_ok(&["ip", "link", "set", iface, "down"]);
    ns.exec_ok(&["ip", "link", "set", iface, "address", mac, "up"]);
}

/// How often dnsmasq has logged (re-)reading the hosts file.
fn hosts_reads(run: &Path) -> usize {
    let log = std::fs::read_to_string(run.join("br0.log")).unwrap_or_default();
    let needle = format!("read {}", run.join("br0.hosts").display());
    log.lines().filter(|l| l.ends_with(&needle)).count()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dnsmasq_serves_only_reservations() {
    if !require_root("dnsmasq_serves_only_reservations") {
        return;
    }
    let host = Netns::new();
    let client = Netns::new();
    veth(&host, "vh0", &client, "c0");
    let tmp = tempfile::tempdir().unwrap();
    // dnsmasq runs as nobody and must reach its files; apply() makes the run
    // directory itself 0755, so use the temporary directory directly.
    let run = tmp.path().to_path_buf();
    let scripts = tempfile::tempdir().unwrap();
    let (script, out) = write_script(scripts.path());

    let dnsmasq = Dnsmasq::new(&run);
    let mut cfg = DhcpConfig {
        bridge: "br0".into(),
        subnet: "10.78.0.0/24".parse().unwrap(),
        gateway: "10.78.0.1".parse().unwrap(),
        dns: vec!["192.0.2.53".parse().unwrap()],
        reservations: vec![Reservation {
            mac: "52:54:00:12:34:56".into(),
            ip: "10.78.0.50".parse().unwrap(),
            hostname: Some("vm1".into()),
        }],
    };

    let c = cfg.clone();
    let d = dnsmasq.clone();
    host.run(|| async move {
        ensure_bridge("br0", &["10.78.0.1/24".parse().unwrap()], None)
            .await
            .unwrap();
        assert_eq!(d.running_pid("br0"), None);
        d.apply(&c).await.unwrap();
    });
    host.exec_ok(&["ip", "link", "set", "vh0", "master", "br0", "up"]);
    let pid = dnsmasq.running_pid("br0").expect("dnsmasq runs");
    for ext in ["conf", "hosts"] {
        let mode = std::fs::metadata(run.join(format!("br0.{ext}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{ext}");
    }

    // Idempotent: same pid, no reload. (dnsmasq logs reading the hosts file
    // shortly after the starting process has exited, so wait for that first.)
    wait_until("dnsmasq to read its hosts file", || hosts_reads(&run) == 1);
    let reads = hosts_reads(&run);
    let (d, c) = (dnsmasq.clone(), cfg.clone());
    host.run(|| async move { d.apply(&c).await.unwrap() });
    assert_eq!(dnsmasq.running_pid("br0"), Some(pid));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(hosts_reads(&run), reads);

    set_mac(&client, "c0", "52:54:00:12:34:56");
    assert_eq!(
        udhcpc(&client, "c0", &script, &out, "5").as_deref(),
        Some("10.78.0.50 10.78.0.1 192.0.2.53")
    );

    // New address for the same MAC: reloaded by SIGHUP, not restarted.
    cfg.reservations[0].ip = "10.78.0.51".parse().unwrap();
    let (d, c) = (dnsmasq.clone(), cfg.clone());
    host.run(|| async move { d.apply(&c).await.unwrap() });
    assert_eq!(
        dnsmasq.running_pid("br0"),
        Some(pid),
        "dnsmasq was restarted"
    );
    wait_until("dnsmasq to re-read its hosts file", || {
        hosts_reads(&run) > reads
    });
    assert_eq!(
        udhcpc(&client, "c0", &script, &out, "5").as_deref(),
        Some("10.78.0.51 10.78.0.1 192.0.2.53")
    );

    // A MAC without a reservation gets nothing.
    set_mac(&client, "c0", "52:54:00:99:99:99");
    assert_eq!(udhcpc(&client, "c0", &script, &out, "2"), None);
    let log = std::fs::read_to_string(run.join("br0.log")).unwrap();
    assert!(
        log.contains("52:54:00:99:99:99 no address available"),
        "{log}"
    );

    // A second reservation is served alongside the first.
    cfg.reservations.push(Reservation {
        mac: "52:54:00:99:99:99".into(),
        ip: "10.78.0.99".parse().unwrap(),
        hostname: Some("not a valid name".into()),
    });
    // Changed options (DNS servers) restart dnsmasq.
    cfg.dns = vec![];
    let (d, c) = (dnsmasq.clone(), cfg.clone());
    host.run(|| async move { d.apply(&c).await.unwrap() });
    let new_pid = dnsmasq.running_pid("br0").expect("dnsmasq runs");
    assert_ne!(new_pid, pid);
    // No DNS servers means no DNS option at all (not dnsmasq itself).
    assert_eq!(
        udhcpc(&client, "c0", &script, &out, "5").as_deref(),
        Some("10.78.0.99 10.78.0.1")
    );

    // An apply that wrote files but died before acting leaves a marker; the
    // next apply restarts dnsmasq even though the files look current.
    std::fs::write(run.join("br0.dirty"), "").unwrap();
    let (d, c) = (dnsmasq.clone(), cfg.clone());
    host.run(|| async move { d.apply(&c).await.unwrap() });
    let pid3 = dnsmasq.running_pid("br0").expect("dnsmasq runs");
    assert_ne!(pid3, new_pid);
    assert!(!run.join("br0.dirty").exists());
    let new_pid = pid3;

    let d = dnsmasq.clone();
    host.run(|| async move {
        d.stop("br0").await.unwrap();
        d.stop("br0").await.unwrap();
        assert!(matches!(
            d.stop("br0;x").await,
            Err(DhcpError::InvalidName(_))
        ));
    });
    assert_eq!(dnsmasq.running_pid("br0"), None);
    let stat = std::fs::read_to_string(format!("/proc/{new_pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z"),
        "dnsmasq still alive: {stat}"
    );
    assert!(!run.join("br0.pid").exists());
}
