//! VM networking end to end, as root, in network namespaces:
//!
//! ```text
//!  test process (root ns) --veth-- [ host ns: ironidc, bridge, dnsmasq, nft, QEMU guest ] --veth-- [ client ns ]
//!     10.213.x.1                    10.213.x.2 (API)   192.0.2.1 ("uplink")                         192.0.2.2
//! ```
//!
//! A real guest from the demo image gets its address by DHCP reservation,
//! its hostname from the cloud-init seed, and serves a page with busybox
//! httpd. The client fetches it through a port forward and through the
//! reverse proxy (HTTP, self-signed HTTPS, custom-CA HTTPS); the rules come
//! back after the controller restarts with the kernel table gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::netns::{root_and_tools_available, Netns};
use common::{demo_image_dir, serial, wait_until, Server};
use serde_json::json;

const PAGE: &str = "IRONIDC-GUEST";

/// `curl` from the client namespace; (exit code, body).
fn client_curl(client: &Netns, args: &[&str]) -> (i32, String) {
    let mut all = vec!["curl", "-s", "-m", "5"];
    all.extend_from_slice(args);
    let out = client.exec(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The HTTP status of `http://192.0.2.1/` with `Host: domain`, from the
/// client namespace.
fn http_status(client: &Netns, domain: &str) -> String {
    let host = format!("Host: {domain}");
    let args = [
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        &host,
        "http://192.0.2.1/",
    ];
    client_curl(client, &args).1
}

/// An HTTPS fetch of `domain` through the host's public address from the
/// client namespace, trusting only `ca_file`; (curl exit code, body).
fn https_page(client: &Netns, ca_file: &Path, domain: &str) -> (i32, String) {
    client_curl(
        client,
        &[
            "--cacert",
            ca_file.to_str().unwrap(),
            "--resolve",
            &format!("{domain}:443:192.0.2.1"),
            &format!("https://{domain}/"),
        ],
    )
}

struct TestCa {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

/// A private CA and a certificate it signed for `domain`.
fn custom_certificate(domain: &str) -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ironidc test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![domain.to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    TestCa {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Pebble and its fake DNS, stopped on drop.
struct Pebble {
    directory: String,
    /// CA of pebble's own HTTPS listener, as a file.
    ca_file: std::path::PathBuf,
    children: Vec<std::process::Child>,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Pebble (a test ACME server) and its fake DNS inside the host namespace:
/// every name resolves to 127.0.0.1, so pebble's HTTP-01 check reaches the
/// controller's proxy on port 80.
fn start_pebble(host_ns: &Netns, dir: &Path) -> Pebble {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    // A subject of its own: with rcgen's default name on both, the leaf
    // would look self-signed to clients.
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pebble listener test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
    let pebble_dir = dir.join("pebble");
    std::fs::create_dir_all(&pebble_dir).unwrap();
    let ca_file = pebble_dir.join("listener-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(pebble_dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(pebble_dir.join("key.pem"), key.serialize_pem()).unwrap();
    let config = json!({"pebble": {
        "listenAddress": "127.0.0.1:14000",
        "managementListenAddress": "127.0.0.1:15000",
        "certificate": pebble_dir.join("cert.pem"),
        "privateKey": pebble_dir.join("key.pem"),
        "httpPort": 80,
        "tlsPort": 5001,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false
    }});
    std::fs::write(pebble_dir.join("pebble.json"), config.to_string()).unwrap();
    let log_file = pebble_dir.join("pebble.log");
    let spawn = |args: &[&str]| {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_file)
            .unwrap();
        Command::new("ip")
            .args(["netns", "exec", &host_ns.0])
            .args(args)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    };
    let mut pebble = Pebble {
        directory: "https://127.0.0.1:14000/dir".to_string(),
        ca_file: ca_file.clone(),
        children: Vec::new(),
    };
    pebble.children.push(spawn(&[
        "pebble-challtestsrv",
        "-dns01",
        "127.0.0.1:8053",
        "-http01",
        "",
        "-https01",
        "",
        "-tlsalpn01",
        "",
        "-management",
        "127.0.0.1:8055",
        "-defaultIPv4",
        "127.0.0.1",
        "-defaultIPv6",
        "",
    ]));
    pebble.children.push(spawn(&[
        "pebble",
        "-config",
        pebble_dir.join("pebble.json").to_str().unwrap(),
        "-dnsserver",
        "127.0.0.1:8053",
    ]));
    let directory = pebble.directory.clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let probe = host_ns.exec(&[
            "curl",
            "-sS",
            "-f",
            "-m",
            "2",
            "--cacert",
            ca_file.to_str().unwrap(),
            &directory,
        ]);
        if probe.status.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pebble did not come up: {}\n{}",
            String::from_utf8_lossy(&probe.stderr),
            std::fs::read_to_string(&log_file).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    pebble
}

fn pebble_available(test: &str) -> bool {
    let ok =
        Path::new("/usr/bin/pebble").exists() && Path::new("/usr/bin/pebble-challtestsrv").exists();
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: pebble is required in CI"
        );
        eprintln!("{test}: pebble not installed, the ACME part is skipped");
    }
    ok
}

#[test]
fn nat_proxy_and_addresses_with_a_real_guest() {
    let test = "nat_proxy_and_addresses_with_a_real_guest";
    if !root_and_tools_available(test) {
        return;
    }
    let images = demo_image_dir();
    let n = std::process::id() % 200 + 20;
    // root <-> host (API), host <-> client (the host's "uplink").
    let host_ns = Netns::reachable(
        format!("ironidc-e2e-h{n}"),
        &format!("ie2r{n}"),
        &format!("ie2h{n}"),
        &format!("10.213.{n}"),
    );
    let client_ns = Netns::new(format!("ironidc-e2e-c{n}"));
    host_ns.must(&[
        "ip", "link", "add", "up0", "type", "veth", "peer", "name", "cl0",
    ]);
    host_ns.must(&["ip", "link", "set", "cl0", "netns", &client_ns.0]);
    host_ns.must(&["ip", "addr", "add", "192.0.2.1/24", "dev", "up0"]);
    host_ns.must(&["ip", "link", "set", "up0", "up"]);
    client_ns.must(&["ip", "addr", "add", "192.0.2.2/24", "dev", "cl0"]);
    client_ns.must(&["ip", "link", "set", "cl0", "up"]);

    let dir = tempfile::tempdir().unwrap();
    let api_ip = format!("10.213.{n}.2");
    let acme = pebble_available(test).then(|| start_pebble(&host_ns, dir.path()));
    let (acme_directory, acme_ca) = acme
        .as_ref()
        .map(|p| {
            (
                p.directory.clone(),
                p.ca_file.to_string_lossy().into_owned(),
            )
        })
        .unwrap_or_default();
    let env = [
        ("IRONIDC_TOKEN", common::TOKEN),
        ("IRONIDC_PROXY_HTTP", "0.0.0.0:80"),
        ("IRONIDC_PROXY_HTTPS", "0.0.0.0:443"),
        ("IRONIDC_ACME_DIRECTORY", acme_directory.as_str()),
        ("IRONIDC_ACME_CA_FILE", acme_ca.as_str()),
        // Only the reconcile at start: the test plants foreign state and
        // must not race a periodic repair.
        ("IRONIDC_RECONCILE_INTERVAL", "3600"),
    ];
    let s = Server::start_in_netns(&host_ns.0, &api_ip, 1880, dir.path(), &env);

    // A host with a NAT bridge and a pool.
    let host = json!({
        "name": "h1",
        "type": "QEMUServer",
        "config": {
            "images_path": images.to_string_lossy(),
            "system_maps": { "demo": ["demo.qcow2", 0] },
            "network_nat": "brnat0",
            "public_addr": ["192.0.2.1"],
            "ports_start": 20000,
            "ports_close": 20100,
            "ipaddr_maps": {
                "lan": { "vers": "ipv4", "type": "nat", "from": "10.99.0.10", "nums": 20,
                         "gate": "10.99.0.1", "mask": "255.255.255.0", "dns": ["10.99.0.1"] }
            }
        }
    });
    // Bad pools are refused before anything is made.
    let mut bad = host.clone();
    bad["name"] = json!("h-bad");
    bad["config"]["ipaddr_maps"]["lan"]["from"] = json!("10.98.0.10");
    let (status, v) = s.call("POST", "/api/server/create", Some(bad));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["msg"]
            .as_str()
            .unwrap()
            .contains("config.ipaddr_maps.lan.from"),
        "{v}"
    );
    let mut bad = host.clone();
    bad["name"] = json!("h-bad");
    bad["config"]["network_nat"] = json!("br;x");
    let (status, v) = s.call("POST", "/api/server/create", Some(bad));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("config.network_nat"),
        "{v}"
    );

    s.ok("POST", "/api/server/create", Some(host));
    let bridge = host_ns.must(&["ip", "-j", "addr", "show", "dev", "brnat0"]);
    assert!(bridge.contains("10.99.0.1"), "{bridge}");

    // A VM: its NIC gets the pool's first address, a MAC, and a seed.
    let vm = "web1";
    let created = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": vm, "os_name": "demo", "cpu_num": 1, "mem_num": 256, "hdd_num": 1024,
                    "os_pass": "guest-pass-1", "nat_num": 3, "web_num": 4,
                    "nic_all": {"nic0": {"nic_type": "nat"}}}),
        ),
    );
    assert_eq!(
        created["vm"]["config"]["nic_all"]["nic0"]["ip4_addr"], "10.99.0.10",
        "{created}"
    );
    assert_eq!(
        created["vm"]["config"]["nic_all"]["nic0"]["nic_gate"],
        "10.99.0.1"
    );
    assert_eq!(
        created["vm"]["config"]["nic_all"]["nic0"]["nic_mask"],
        "255.255.255.0"
    );
    let pools = s.ok("GET", "/api/server/ipaddr/h1?limit=2", None);
    assert_eq!(pools[0]["total"], 20, "{pools}");
    assert_eq!(pools[0]["used"], 1, "{pools}");
    assert_eq!(
        pools[0]["free_addresses"],
        json!(["10.99.0.11", "10.99.0.12"]),
        "{pools}"
    );
    let ips = s.ok("GET", &format!("/api/client/ipaddr/detail/h1/{vm}"), None);
    assert_eq!(ips.as_array().unwrap().len(), 1, "{ips}");
    assert_eq!(ips[0]["address"], "10.99.0.10");
    // Addresses given on create must be free and inside a pool.
    let (status, v) = s.call(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "web2", "os_name": "demo", "cpu_num": 1, "mem_num": 256, "hdd_num": 1024,
                    "nic_all": {"nic0": {"nic_type": "nat", "ip4_addr": "10.99.0.10"}}})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("nic_all.nic0.ip4_addr"),
        "{v}"
    );
    let (status, v) = s.call(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "web2", "os_name": "demo", "cpu_num": 1, "mem_num": 256, "hdd_num": 1024,
                    "nic_all": {"nic0": {"nic_type": "nat", "ip4_addr": "10.50.0.10"}}})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        !dir.path().join("hosts/h1/vms/web2").exists(),
        "a refused create left a directory"
    );

    // Boot: DHCP reservation, seed hostname, web server.
    s.ok(
        "POST",
        &format!("/api/client/powers/h1/{vm}"),
        Some(json!({"action": "start"})),
    );
    let vm_dir = dir.path().join("hosts/h1/vms").join(vm);
    wait_until(90, "the guest's DHCP address", || {
        serial(&vm_dir).contains("IRONIDC-NET eth0 10.99.0.10")
    });
    assert!(
        serial(&vm_dir).contains("IRONIDC-SEED hostname=web1"),
        "{}",
        serial(&vm_dir)
    );

    // Port forward: the client reaches the guest's page through the host.
    let rule = s.ok(
        "POST",
        &format!("/api/client/natadd/h1/{vm}"),
        Some(json!({"protocol": "tcp", "external_port": 20080, "internal_port": 80, "description": "web"})),
    );
    assert_eq!(rule["internal_ip"], "10.99.0.10");
    assert_eq!(rule["public_endpoint"], "192.0.2.1:20080");
    wait_until(30, "the page through the port forward", || {
        client_curl(&client_ns, &["http://192.0.2.1:20080/"])
            .1
            .contains(PAGE)
    });
    let auto = s.ok(
        "POST",
        &format!("/api/client/natadd/h1/{vm}"),
        Some(json!({"protocol": "both", "external_port": 0, "internal_port": 22})),
    );
    assert_eq!(auto["external_port"], 20000, "{auto}");
    let table = host_ns.must(&["nft", "list", "table", "ip", "ironidc"]);
    assert!(table.contains("20080 : 10.99.0.10 . 80"), "{table}");
    assert!(table.contains("20000 : 10.99.0.10 . 22"), "{table}");

    // Bad NAT input.
    let nat = |body: serde_json::Value| {
        s.call("POST", &format!("/api/client/natadd/h1/{vm}"), Some(body))
    };
    for (body, status, field) in [
        (
            json!({"protocol": "tcp", "external_port": 20080, "internal_port": 80}),
            409,
            "20080",
        ),
        (
            json!({"protocol": "icmp", "external_port": 20081, "internal_port": 80}),
            400,
            "protocol",
        ),
        (
            json!({"protocol": "tcp", "external_port": 30000, "internal_port": 80}),
            400,
            "external_port",
        ),
        (
            json!({"protocol": "tcp", "external_port": 20081, "internal_port": 0}),
            400,
            "internal_port",
        ),
        (
            json!({"protocol": "tcp", "external_port": 20081, "internal_port": 80, "internal_ip": "10.99.0.11"}),
            400,
            "internal_ip",
        ),
        (
            json!({"protocol": "tcp", "external_port": 20081, "internal_port": 80, "internal_ip": "nope"}),
            400,
            "internal_ip",
        ),
        (
            json!({"protocol": "tcp", "external_port": "x", "internal_port": 80}),
            400,
            "external_port",
        ),
    ] {
        let (got, v) = nat(body.clone());
        assert_eq!(got, status, "{body}: {v}");
        assert!(v["msg"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    // The kernel refuses a port the database thought free (someone else's
    // element): 409, and no row is left behind.
    host_ns.must(&[
        "nft",
        "add",
        "element",
        "ip",
        "ironidc",
        "fwd_tcp",
        "{ 20090 : 10.99.0.99 . 9 }",
    ]);
    let (got, v) = nat(json!({"external_port": 20090, "internal_port": 80}));
    assert_eq!(got, 409, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("20090"), "{v}");
    let rules = s.ok("GET", &format!("/api/client/natget/h1/{vm}"), None);
    assert_eq!(
        rules.as_array().unwrap().len(),
        2,
        "a refused rule left a row: {rules}"
    );
    host_ns.must(&[
        "nft",
        "delete",
        "element",
        "ip",
        "ironidc",
        "fwd_tcp",
        "{ 20090 }",
    ]);
    s.ok(
        "POST",
        &format!("/api/client/natadd/h1/{vm}"),
        Some(json!({"external_port": 20082, "internal_port": 8080})),
    );
    let (got, v) = nat(json!({"external_port": 20083, "internal_port": 8081}));
    assert_eq!(got, 409, "nat_num: {v}");
    assert!(v["msg"].as_str().unwrap().contains("nat_num"), "{v}");
    let (got, _) = s.call("DELETE", &format!("/api/client/natdel/h1/{vm}/9"), None);
    assert_eq!(got, 404);
    s.ok("DELETE", &format!("/api/client/natdel/h1/{vm}/2"), None);

    // Addresses: add, refuse bad ones, delete by index.
    let added = s.ok(
        "POST",
        &format!("/api/client/ipaddr/create/h1/{vm}"),
        Some(json!({"type": "ipv4", "description": "second"})),
    );
    assert_eq!(added["address"], "10.99.0.11", "{added}");
    assert_eq!(added["index"], 1);
    for (body, field) in [
        (json!({"type": "ipv4", "address": "10.99.0.10"}), "address"),
        (json!({"type": "ipv4", "address": "10.42.0.5"}), "address"),
        (
            json!({"type": "ipv4", "address": "10.99.0.12", "gateway": "10.99.0.254"}),
            "gateway",
        ),
        (json!({"type": "ipv9"}), "type"),
        (json!({"type": "ipv6"}), "type"),
        (json!({"type": "ipv4", "nic": "nic7"}), "nic"),
    ] {
        let (got, v) = s.call(
            "POST",
            &format!("/api/client/ipaddr/create/h1/{vm}"),
            Some(body.clone()),
        );
        assert_eq!(got, 400, "{body}: {v}");
        assert!(v["msg"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    let (got, _) = s.call(
        "DELETE",
        &format!("/api/client/ipaddr/delete/h1/{vm}/5"),
        None,
    );
    assert_eq!(got, 404);
    // The primary address carries forwards: it cannot go first.
    let (got, v) = s.call(
        "DELETE",
        &format!("/api/client/ipaddr/delete/h1/{vm}/0"),
        None,
    );
    assert_eq!(got, 409, "{v}");
    s.ok(
        "DELETE",
        &format!("/api/client/ipaddr/delete/h1/{vm}/1"),
        None,
    );
    assert_eq!(
        s.ok("GET", &format!("/api/client/ipaddr/detail/h1/{vm}"), None)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Reverse proxy: HTTP by Host header.
    s.ok(
        "POST",
        &format!("/api/client/proxys/create/h1/{vm}"),
        Some(json!({"domain": "Web.Example.test", "backend_port": 80})),
    );
    let (_, body) = client_curl(
        &client_ns,
        &["-H", "Host: web.example.test", "http://192.0.2.1/"],
    );
    assert!(body.contains(PAGE), "proxy over HTTP: {body:?}");
    let body = http_status(&client_ns, "other.example.test");
    assert_eq!(body, "404");
    // Self-signed HTTPS (and plain HTTP redirects to it).
    s.ok("POST", &format!("/api/client/proxys/create/h1/{vm}"),
        Some(json!({"domain": "secure.example.test", "ssl_enabled": true, "ssl_type": "self_signed"})));
    let (_, body) = client_curl(
        &client_ns,
        &[
            "-k",
            "--resolve",
            "secure.example.test:443:192.0.2.1",
            "https://secure.example.test/",
        ],
    );
    assert!(body.contains(PAGE), "self-signed HTTPS: {body:?}");
    let code = http_status(&client_ns, "secure.example.test");
    assert_eq!(code, "301");
    // A certificate from the customer's own CA, verified by the client.
    let ca = custom_certificate("shop.example.test");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).unwrap();
    s.ok(
        "POST",
        &format!("/api/client/proxys/create/h1/{vm}"),
        Some(
            json!({"domain": "shop.example.test", "ssl_enabled": true, "ssl_type": "custom",
                    "ssl_cert": ca.cert_pem, "ssl_key": ca.key_pem}),
        ),
    );
    let (code, body) = https_page(&client_ns, &ca_file, "shop.example.test");
    assert!(
        body.contains(PAGE),
        "custom-cert HTTPS (curl exit {code}): {body:?}"
    );
    let listed = s.ok("GET", &format!("/api/client/proxys/detail/h1/{vm}"), None);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    assert!(
        !listed.to_string().contains("PRIVATE KEY"),
        "a key leaked: {listed}"
    );
    // Bad proxy input.
    let other = custom_certificate("elsewhere.example.test");
    for (body, status, field) in [
        (
            json!({"domain": "web.example.test"}),
            409,
            "web.example.test",
        ),
        (json!({"domain": "not a domain"}), 400, "domain"),
        (
            json!({"domain": "x.example.test", "backend_ip": "10.99.0.15"}),
            400,
            "backend_ip",
        ),
        (
            json!({"domain": "x.example.test", "backend_port": 70000}),
            400,
            "backend_port",
        ),
        (
            json!({"domain": "x.example.test", "ssl_enabled": true}),
            400,
            "ssl_type",
        ),
        (
            json!({"domain": "x.example.test", "ssl_enabled": true, "ssl_type": "custom"}),
            400,
            "ssl_cert",
        ),
        (
            json!({"domain": "x.example.test", "ssl_enabled": true, "ssl_type": "custom", "ssl_cert": other.cert_pem, "ssl_key": other.key_pem}),
            400,
            "ssl_cert",
        ),
        (
            json!({"domain": "x.example.test", "ssl_enabled": true, "ssl_type": "custom", "ssl_cert": ca.cert_pem, "ssl_key": other.key_pem}),
            400,
            "ssl_cert",
        ),
    ] {
        let (got, v) = s.call(
            "POST",
            &format!("/api/client/proxys/create/h1/{vm}"),
            Some(body.clone()),
        );
        assert_eq!(got, status, "{body}: {v}");
        assert!(v["msg"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    let (got, _) = s.call(
        "DELETE",
        &format!("/api/client/proxys/delete/h1/{vm}/7"),
        None,
    );
    assert_eq!(got, 404);

    // ACME (HTTP-01) against pebble: issued in the background, then served.
    if acme.is_some() {
        let created = s.ok("POST", &format!("/api/client/proxys/create/h1/{vm}"),
            Some(json!({"domain": "acme.example.test", "ssl_enabled": true, "ssl_type": "letsencrypt"})));
        assert!(created["task_id"].as_i64().is_some(), "{created}");
        let mut last = json!(null);
        wait_until(60, "the ACME certificate", || {
            let list = s.ok("GET", &format!("/api/client/proxys/detail/h1/{vm}"), None);
            last = list
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["domain"] == "acme.example.test")
                .cloned()
                .unwrap();
            assert_ne!(last["cert_status"], "failed", "ACME failed: {last}");
            last["cert_status"] == "active"
        });
        assert!(last["cert_not_after"].as_i64().unwrap() > 0, "{last}");
        let root = host_ns.must(&[
            "curl",
            "-sf",
            "--cacert",
            &acme_ca,
            "https://127.0.0.1:15000/roots/0",
        ]);
        let root_file = dir.path().join("acme-root.pem");
        std::fs::write(&root_file, root).unwrap();
        let (code, body) = https_page(&client_ns, &root_file, "acme.example.test");
        assert!(
            body.contains(PAGE),
            "ACME HTTPS (curl exit {code}): {body:?}"
        );
        // That was the VM's fourth binding: web_num is 4.
        let (got, v) = s.call(
            "POST",
            &format!("/api/client/proxys/create/h1/{vm}"),
            Some(json!({"domain": "fifth.example.test"})),
        );
        assert_eq!(got, 409, "{v}");
        assert!(v["msg"].as_str().unwrap().contains("web_num"), "{v}");
    }

    // Restart with the kernel state lost (table gone, dnsmasq killed) and a
    // foreign element planted: everything comes back, the stranger goes.
    s.kill();
    host_ns.must(&[
        "nft",
        "add",
        "element",
        "ip",
        "ironidc",
        "fwd_tcp",
        "{ 20099 : 10.99.0.19 . 99 }",
    ]);
    let planted = host_ns.must(&["nft", "list", "table", "ip", "ironidc"]);
    assert!(planted.contains("20099"), "{planted}");
    let s = Server::start_in_netns(&host_ns.0, &api_ip, 1880, dir.path(), &env);
    let table = host_ns.must(&["nft", "list", "table", "ip", "ironidc"]);
    assert!(
        !table.contains("20099"),
        "a foreign forward survived: {table}"
    );
    s.kill();
    host_ns.must(&["nft", "delete", "table", "ip", "ironidc"]);
    let _ = host_ns.exec(&["pkill", "-9", "dnsmasq"]);
    let s = Server::start_in_netns(&host_ns.0, &api_ip, 1880, dir.path(), &env);
    let table = host_ns.must(&["nft", "list", "table", "ip", "ironidc"]);
    assert!(table.contains("20080 : 10.99.0.10 . 80"), "{table}");
    assert!(table.contains("masquerade"), "{table}");
    wait_until(30, "the page through the restored forward", || {
        client_curl(&client_ns, &["http://192.0.2.1:20080/"])
            .1
            .contains(PAGE)
    });
    let (_, body) = https_page(&client_ns, &ca_file, "shop.example.test");
    assert!(body.contains(PAGE), "proxy after restart: {body:?}");
    assert!(std::fs::read_to_string(dir.path().join("run/brnat0.hosts"))
        .unwrap_or_default()
        .contains("10.99.0.10"));

    // Delete the forward: the port is closed again.
    let rules = s.ok("GET", &format!("/api/client/natget/h1/{vm}"), None);
    let idx = rules
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["external_port"] == 20080)
        .unwrap();
    s.ok("DELETE", &format!("/api/client/natdel/h1/{vm}/{idx}"), None);
    let (code, _) = client_curl(&client_ns, &["http://192.0.2.1:20080/"]);
    assert_eq!(code, 7, "curl should be refused once the rule is gone");

    // Deleting the VM takes its rules, bindings and reservation with it.
    s.ok("DELETE", &format!("/api/client/delete/h1/{vm}"), None);
    let table = host_ns.must(&["nft", "list", "table", "ip", "ironidc"]);
    assert!(!table.contains("10.99.0.10"), "{table}");
    let code = http_status(&client_ns, "web.example.test");
    assert_eq!(code, "404");
    assert!(
        !std::fs::read_to_string(dir.path().join("run/brnat0.hosts"))
            .unwrap_or_default()
            .contains("10.99.0.10")
    );
    let again = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "web3", "os_name": "demo", "cpu_num": 1, "mem_num": 256, "hdd_num": 1024,
                    "nic_all": {"nic0": {"nic_type": "nat"}}})),
    );
    assert_eq!(
        again["vm"]["config"]["nic_all"]["nic0"]["ip4_addr"], "10.99.0.10",
        "the address was not freed"
    );
    s.ok("DELETE", "/api/client/delete/h1/web3", None);
}
