//! nftables NAT and links against the real kernel, inside network namespaces.
//! Needs root (skipped otherwise, except under CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod netns_util;

use std::process::Command;
use std::time::{Duration, Instant};

use ironidc_net::links::{
    delete_link, enable_forwarding, ensure_bridge, ensure_tap, link_exists, tap_name_for_mac,
    LinkError,
};
use ironidc_net::nft::{Forward, Masquerade, NatTable, Nft, NftError, Protocol, ReconcileReport};
use netns_util::{require_root, veth, Netns};
use serde_json::Value;

fn fwd(p: Protocol, ext: u16, ip: &str, int: u16) -> Forward {
    Forward {
        protocol: p,
        external_port: ext,
        internal_ip: ip.parse().unwrap(),
        internal_port: int,
    }
}

fn masq(bridge: &str, subnet: &str) -> Masquerade {
    Masquerade {
        bridge: bridge.into(),
        subnet: subnet.parse().unwrap(),
    }
}

/// `nft ARGS` in the current (test) namespace; panics on failure.
fn nft(args: &[&str]) -> String {
    let out = Command::new("nft").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "nft {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn rule_count(table: &str) -> usize {
    let v: Value = serde_json::from_str(&nft(&["-j", "list", "table", "ip", table])).unwrap();
    v["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("rule").is_some())
        .count()
}

fn sorted(mut f: Vec<Forward>) -> Vec<Forward> {
    f.sort();
    f
}

const CLEAN: ReconcileReport = ReconcileReport {
    missing_forwards: 0,
    foreign_forwards: 0,
    rebuilt: false,
};

#[test]
fn table_round_trip_and_reconcile() {
    if !require_root("table_round_trip_and_reconcile") {
        return;
    }
    let ns = Netns::new();
    ns.run(|| async {
        let nft_ = Nft::new();
        assert_eq!(nft_.read().await.unwrap(), None);
        nft_.delete().await.unwrap(); // absent is fine

        // An empty table is valid.
        nft_.replace(&NatTable::default()).await.unwrap();
        assert_eq!(nft_.read().await.unwrap(), Some(NatTable::default()));

        let desired = NatTable {
            masquerade: vec![masq("br0", "10.77.0.1/24")],
            forwards: vec![
                fwd(Protocol::Tcp, 8080, "10.77.0.2", 80),
                fwd(Protocol::Udp, 5353, "10.77.0.3", 53),
            ],
        };
        nft_.replace(&desired).await.unwrap();
        let read = nft_.read().await.unwrap().unwrap();
        // Host bits are dropped from the subnet.
        assert_eq!(read.masquerade, vec![masq("br0", "10.77.0.0/24")]);
        assert_eq!(read.forwards, sorted(desired.forwards.clone()));
        assert_eq!(rule_count("ironidc"), 4);
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);

        // add: new port works; a mapped port is refused, even with the same
        // target, and a batch with one conflict changes nothing.
        nft_.add_forwards(&[fwd(Protocol::Tcp, 2222, "10.77.0.4", 22)])
            .await
            .unwrap();
        for dup in [
            fwd(Protocol::Tcp, 8080, "10.77.0.9", 80),
            fwd(Protocol::Tcp, 8080, "10.77.0.2", 80),
        ] {
            let err = nft_.add_forwards(&[dup]).await.unwrap_err();
            assert!(matches!(err, NftError::Failed { .. }), "{err:?}");
        }
        let err = nft_
            .add_forwards(&[
                fwd(Protocol::Tcp, 9000, "10.77.0.5", 1),
                fwd(Protocol::Tcp, 8080, "10.77.0.5", 1),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, NftError::Failed { .. }), "{err:?}");
        // The same port on the other protocol is a different forward.
        nft_.add_forwards(&[fwd(Protocol::Udp, 8080, "10.77.0.5", 8080)])
            .await
            .unwrap();
        let read = nft_.read().await.unwrap().unwrap();
        assert_eq!(
            read.forwards,
            sorted(vec![
                fwd(Protocol::Tcp, 2222, "10.77.0.4", 22),
                fwd(Protocol::Tcp, 8080, "10.77.0.2", 80),
                fwd(Protocol::Udp, 5353, "10.77.0.3", 53),
                fwd(Protocol::Udp, 8080, "10.77.0.5", 8080),
            ])
        );
        // Conflicting input is refused before nft runs.
        let err = nft_
            .add_forwards(&[
                fwd(Protocol::Tcp, 7000, "10.77.0.5", 1),
                fwd(Protocol::Tcp, 7000, "10.77.0.6", 1),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, NftError::Invalid(_)), "{err:?}");

        // remove: absent forwards and forwards whose port maps elsewhere are
        // skipped without failing the rest.
        nft_.remove_forwards(&[
            fwd(Protocol::Tcp, 2222, "10.77.0.4", 22),
            fwd(Protocol::Udp, 8080, "10.77.0.5", 8080),
            fwd(Protocol::Tcp, 4444, "10.77.0.4", 22),
            fwd(Protocol::Tcp, 8080, "10.77.0.99", 80),
        ])
        .await
        .unwrap();
        let read = nft_.read().await.unwrap().unwrap();
        assert_eq!(read.forwards, sorted(desired.forwards.clone()));
        nft_.remove_forwards(&[fwd(Protocol::Tcp, 2222, "10.77.0.4", 22)])
            .await
            .unwrap();

        // Table gone: reconcile rebuilds everything.
        nft_.delete().await.unwrap();
        assert_eq!(nft_.read().await.unwrap(), None);
        let r = nft_.reconcile(&desired).await.unwrap();
        assert_eq!(
            r,
            ReconcileReport {
                missing_forwards: 2,
                foreign_forwards: 0,
                rebuilt: true
            }
        );
        assert_eq!(
            nft_.read().await.unwrap().unwrap().forwards,
            sorted(desired.forwards.clone())
        );
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);

        // A foreign element, a removed element and a changed target are fixed
        // element by element.
        nft(&[
            "add",
            "element",
            "ip",
            "ironidc",
            "fwd_tcp",
            "{ 7777 : 10.1.1.1 . 1 }",
        ]);
        nft(&["delete", "element", "ip", "ironidc", "fwd_udp", "{ 5353 }"]);
        let r = nft_.reconcile(&desired).await.unwrap();
        assert_eq!(
            r,
            ReconcileReport {
                missing_forwards: 1,
                foreign_forwards: 1,
                rebuilt: false
            }
        );
        nft(&["delete", "element", "ip", "ironidc", "fwd_tcp", "{ 8080 }"]);
        nft(&[
            "add",
            "element",
            "ip",
            "ironidc",
            "fwd_tcp",
            "{ 8080 : 10.77.0.66 . 80 }",
        ]);
        let r = nft_.reconcile(&desired).await.unwrap();
        assert_eq!(
            r,
            ReconcileReport {
                missing_forwards: 1,
                foreign_forwards: 1,
                rebuilt: false
            }
        );
        assert_eq!(
            nft_.read().await.unwrap().unwrap().forwards,
            sorted(desired.forwards.clone())
        );
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);

        // A rule added by hand is foreign: the table is rebuilt without it.
        nft(&[
            "add",
            "rule",
            "ip",
            "ironidc",
            "prerouting",
            "tcp",
            "dport",
            "9999",
            "dnat",
            "to",
            "10.9.9.9",
        ]);
        assert_eq!(rule_count("ironidc"), 5);
        let r = nft_.reconcile(&desired).await.unwrap();
        assert!(r.rebuilt, "{r:?}");
        assert_eq!((r.missing_forwards, r.foreign_forwards), (0, 0));
        assert_eq!(rule_count("ironidc"), 4);
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);

        // So is a rule that wears our comment but does something else, and a
        // chain policy changed by hand.
        nft(&[
            "add",
            "rule",
            "ip",
            "ironidc",
            "postrouting",
            "ip",
            "saddr",
            "10.77.0.0/24",
            "accept",
            "comment",
            "\"ironidc masq br0 10.77.0.0/24\"",
        ]);
        assert!(nft_.reconcile(&desired).await.unwrap().rebuilt);
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);
        nft(&[
            "add",
            "chain",
            "ip",
            "ironidc",
            "prerouting",
            "{ policy drop; }",
        ]);
        assert!(nft_.reconcile(&desired).await.unwrap().rebuilt);
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);
        // A set we did not create.
        nft(&[
            "add",
            "set",
            "ip",
            "ironidc",
            "extra",
            "{ type ipv4_addr; }",
        ]);
        assert!(nft_.reconcile(&desired).await.unwrap().rebuilt);
        assert_eq!(nft_.reconcile(&desired).await.unwrap(), CLEAN);

        // A different masquerade set means a rebuild, too.
        let mut more = desired.clone();
        more.masquerade.push(masq("br1", "10.88.0.0/16"));
        let r = nft_.reconcile(&more).await.unwrap();
        assert!(r.rebuilt);
        assert_eq!(nft_.read().await.unwrap().unwrap().masquerade.len(), 2);
        assert_eq!(nft_.reconcile(&more).await.unwrap(), CLEAN);

        // Other tables are none of our business.
        nft(&["add", "table", "ip", "someone_else"]);
        nft_.delete().await.unwrap();
        nft_.delete().await.unwrap();
        assert_eq!(nft_.read().await.unwrap(), None);
        nft(&["list", "table", "ip", "someone_else"]);
    });
}

#[test]
fn invalid_names_are_refused() {
    assert!(matches!(
        Nft::with_table("bad name"),
        Err(NftError::InvalidName(_))
    ));
    let t = NatTable {
        masquerade: vec![masq("-br0", "10.0.0.0/24")],
        forwards: vec![],
    };
    assert!(matches!(
        Nft::new().render(&t),
        Err(NftError::InvalidName(_))
    ));
    assert!(tap_name_for_mac("52:54:00:12:34").is_err());
}

#[test]
fn bridges_and_taps() {
    if !require_root("bridges_and_taps") {
        return;
    }
    let ns = Netns::new();
    // A veth end stands in for the uplink NIC (no dummy module here).
    ns.exec_ok(&[
        "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up0p",
    ]);
    ns.run(|| async {
        let a: ipnet::IpNet = "10.66.0.1/24".parse().unwrap();
        let b: ipnet::IpNet = "fd00:66::1/64".parse().unwrap();
        assert!(!link_exists("br0").await.unwrap());
        assert!(ensure_bridge("br0", &[a], None).await.unwrap());
        assert!(!ensure_bridge("br0", &[a, b], Some("up0")).await.unwrap());
        assert!(!ensure_bridge("br0", &[a, b], Some("up0")).await.unwrap());
        assert!(link_exists("br0").await.unwrap());
        // An address we did not ask for stays.
        let out = Command::new("ip")
            .args(["addr", "add", "10.66.1.1/24", "dev", "br0"])
            .output()
            .unwrap();
        assert!(out.status.success());
        ensure_bridge("br0", &[a], None).await.unwrap();

        let tap = tap_name_for_mac("52:54:00:AB:CD:EF").unwrap();
        assert_eq!(tap, "ix525400abcdef");
        ensure_tap(&tap, "br0").await.unwrap();
        ensure_tap(&tap, "br0").await.unwrap();

        // Someone else's link of another kind is not repurposed.
        assert!(matches!(
            ensure_tap("up0", "br0").await,
            Err(LinkError::WrongKind { .. })
        ));
        assert!(matches!(
            ensure_bridge("up0", &[], None).await,
            Err(LinkError::WrongKind { .. })
        ));
        assert!(matches!(
            ensure_bridge("-x", &[], None).await,
            Err(LinkError::InvalidName(_))
        ));

        enable_forwarding(false).unwrap();
    });
    let link = |name: &str| -> Value {
        let v: Value =
            serde_json::from_str(&ns.exec_ok(&["ip", "-j", "-d", "link", "show", "dev", name]))
                .unwrap();
        v[0].clone()
    };
    assert_eq!(link("br0")["linkinfo"]["info_kind"], "bridge");
    assert!(link("br0")["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    assert_eq!(link("up0")["master"], "br0");
    assert_eq!(link("ix525400abcdef")["master"], "br0");
    assert_eq!(
        link("ix525400abcdef")["linkinfo"]["info_data"]["type"],
        "tap"
    );
    let addrs = ns.exec_ok(&["ip", "-o", "addr", "show", "dev", "br0"]);
    for a in ["10.66.0.1/24", "10.66.1.1/24", "fd00:66::1/64"] {
        assert_eq!(addrs.matches(a).count(), 1, "{a} in {addrs}");
    }
    // Forwarding was enabled inside the namespace (per-thread /proc/sys/net).
    assert_eq!(
        ns.exec_ok(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );

    ns.run(|| async {
        delete_link("ix525400abcdef").await.unwrap();
        delete_link("ix525400abcdef").await.unwrap();
        assert!(!link_exists("ix525400abcdef").await.unwrap());
        delete_link("br0").await.unwrap();
        assert!(!link_exists("br0").await.unwrap());
    });
}

/// `busybox wget` from inside `ns`; Ok(body) or Err(stderr). (busybox 1.35's
/// `wget -T` segfaults here, hence `timeout`.)
fn wget(ns: &Netns, url: &str) -> Result<String, String> {
    let out = ns.exec(&["timeout", "10", "busybox", "wget", "-q", "-O", "-", url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn wait_for_http(ns: &Netns, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while wget(ns, url).is_err() {
        assert!(Instant::now() < deadline, "{url} never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn port_forward_carries_traffic() {
    if !require_root("port_forward_carries_traffic") {
        return;
    }
    let host = Netns::new();
    let guest = Netns::new();
    let neighbour = Netns::new();
    let client = Netns::new();
    veth(&host, "vg", &guest, "eth0");
    veth(&host, "vn", &neighbour, "eth0");
    veth(&host, "vc", &client, "eth0");

    let table = NatTable {
        masquerade: vec![masq("br0", "10.77.0.0/24")],
        forwards: vec![
            fwd(Protocol::Tcp, 8080, "10.77.0.2", 80),
            fwd(Protocol::Udp, 5353, "10.77.0.2", 53),
        ],
    };
    let t = table.clone();
    host.run(|| async move {
        let created = ensure_bridge("br0", &["10.77.0.1/24".parse().unwrap()], None)
            .await
            .unwrap();
        assert!(created);
        enable_forwarding(false).unwrap();
        let nft_ = Nft::new();
        nft_.replace(&t).await.unwrap();
        let read = nft_.read().await.unwrap().unwrap();
        assert!(read
            .forwards
            .contains(&fwd(Protocol::Udp, 5353, "10.77.0.2", 53)));
        assert_eq!(read.forwards.len(), 2);
    });
    host.exec_ok(&["ip", "link", "set", "vg", "master", "br0", "up"]);
    host.exec_ok(&["ip", "link", "set", "vn", "master", "br0", "up"]);
    host.exec_ok(&["ip", "addr", "add", "192.0.2.1/24", "dev", "vc"]);
    host.exec_ok(&["ip", "link", "set", "vc", "up"]);
    guest.exec_ok(&["ip", "addr", "add", "10.77.0.2/24", "dev", "eth0"]);
    guest.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    guest.exec_ok(&["ip", "route", "add", "default", "via", "10.77.0.1"]);
    neighbour.exec_ok(&["ip", "addr", "add", "10.77.0.3/24", "dev", "eth0"]);
    neighbour.exec_ok(&["ip", "link", "set", "eth0", "up"]);
    neighbour.exec_ok(&["ip", "route", "add", "default", "via", "10.77.0.1"]);
    client.exec_ok(&["ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    client.exec_ok(&["ip", "link", "set", "eth0", "up"]);

    let guest_www = tempfile::tempdir().unwrap();
    std::fs::write(guest_www.path().join("index.html"), "marker-guest-5f2c\n").unwrap();
    let client_www = tempfile::tempdir().unwrap();
    std::fs::write(client_www.path().join("index.html"), "marker-client-91ad\n").unwrap();
    let _guest_httpd = guest.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        guest_www.path().to_str().unwrap(),
    ]);
    let _client_httpd = client.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        client_www.path().to_str().unwrap(),
    ]);
    wait_for_http(&guest, "http://127.0.0.1/");
    wait_for_http(&client, "http://127.0.0.1/");

    // From outside through the prerouting chain.
    assert_eq!(
        wget(&client, "http://192.0.2.1:8080/").unwrap().trim(),
        "marker-guest-5f2c"
    );
    // Never for connections the host itself makes: a host process on the
    // forwarded port keeps its local clients (to loopback and to the
    // public address alike), and without one nothing answers.
    let err = wget(&host, "http://192.0.2.1:8080/").unwrap_err();
    assert!(err.contains("refused"), "{err}");
    let host_www = tempfile::tempdir().unwrap();
    std::fs::write(host_www.path().join("index.html"), "marker-host-77e1\n").unwrap();
    let host_httpd = host.spawn(&[
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        host_www.path().to_str().unwrap(),
    ]);
    wait_for_http(&host, "http://127.0.0.1:8080/");
    for url in ["http://127.0.0.1:8080/", "http://192.0.2.1:8080/"] {
        assert_eq!(
            wget(&host, url).unwrap().trim(),
            "marker-host-77e1",
            "{url}"
        );
    }
    // Outside traffic to the port still reaches the guest.
    assert_eq!(
        wget(&client, "http://192.0.2.1:8080/").unwrap().trim(),
        "marker-guest-5f2c"
    );
    drop(host_httpd);
    // Hairpin: another guest on the same bridge uses the public address.
    // Without the hairpin masquerade the guest would answer it directly and
    // the connection would break.
    assert_eq!(
        wget(&neighbour, "http://192.0.2.1:8080/").unwrap().trim(),
        "marker-guest-5f2c"
    );
    // A guest reaching its own forward: with br_netfilter loaded and
    // net.bridge.bridge-nf-call-iptables=1 (as here, and wherever Docker
    // runs) the DNAT happens at bridge level and the packet would have to
    // leave through the port it came in on, which a bridge only does for
    // ports in hairpin mode. Routed (call-iptables=0, or no br_netfilter),
    // the hairpin rule suffices.
    let call_iptables = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    if host.exec(&["test", "-e", call_iptables]).status.success() {
        host.exec_ok(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0"]);
    }
    assert_eq!(
        wget(&guest, "http://192.0.2.1:8080/").unwrap().trim(),
        "marker-guest-5f2c"
    );
    // Masquerade: the client has no route back to 10.77.0.0/24, so this only
    // works because the guest's source address is rewritten to 192.0.2.1.
    assert_eq!(
        wget(&guest, "http://192.0.2.2/").unwrap().trim(),
        "marker-client-91ad"
    );
    // Nothing forwards 8081.
    let err = wget(&client, "http://192.0.2.1:8081/").unwrap_err();
    assert!(err.contains("refused"), "{err}");

    host.run(|| async {
        Nft::new()
            .remove_forwards(&[fwd(Protocol::Tcp, 8080, "10.77.0.2", 80)])
            .await
            .unwrap();
    });
    let err = wget(&client, "http://192.0.2.1:8080/").unwrap_err();
    assert!(err.contains("refused"), "{err}");

    // Re-adding restores it; a second reconcile has nothing to do.
    host.run(|| async {
        let nft_ = Nft::new();
        nft_.add_forwards(&[fwd(Protocol::Tcp, 8080, "10.77.0.2", 80)])
            .await
            .unwrap();
        assert_eq!(nft_.reconcile(&table).await.unwrap(), CLEAN);
    });
    assert_eq!(
        wget(&client, "http://192.0.2.1:8080/").unwrap().trim(),
        "marker-guest-5f2c"
    );
}
