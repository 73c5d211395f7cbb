//! Regression tests of the holes found by probing the panel as an attacker
//! (issue 11), against the real binary: long VM passwords, connection
//! floods, forwards onto host ports and of local traffic, `kill -9` in the
//! middle of a create, unaudited refusals, partial host updates, unusable
//! root tokens and lockout replies that tell accounts apart. The console
//! closing after an owner change is in `vm_operations.rs`, which has a
//! running guest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::netns::{root_and_tools_available, Netns};
use common::{blank_image_dir, host_body, Server, TOKEN};
use serde_json::{json, Value};

fn vm_body(uuid: &str, os_pass: &str) -> Value {
    json!({"vm_uuid": uuid, "os_name": "demo", "cpu_num": 1, "mem_num": 128,
           "hdd_num": 64, "os_pass": os_pass})
}

/// A plain GET of the health endpoint with its own short timeout.
fn health_ok(base: &str) -> bool {
    common::http_client_builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{base}/api/system/health"))
        .send()
        .is_ok_and(|r| r.status().is_success())
}

// ---- 1. VM passwords ---------------------------------------------------------

#[test]
fn long_vm_passwords_are_refused_and_hashing_never_stalls_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let huge = "A1-".repeat(55_000); // 165,000 characters
    let started = Instant::now();
    let (status, v) = s.call(
        "POST",
        "/api/client/create/h1",
        Some(vm_body("long1", &huge)),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("os_pass"), "{v}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused before any hashing"
    );
    assert!(!dir.path().join("hosts/h1/vms/long1").exists(), "no disk");
    let (status, _) = s.call("GET", "/api/client/detail/h1/long1", None);
    assert_eq!(status, 404, "no row");
    for bad in ["short", "has:colon-pass", "new\nline-pass"] {
        let (status, v) = s.call("POST", "/api/client/create/h1", Some(vm_body("bad1", bad)));
        assert_eq!(status, 400, "{bad:?}: {v}");
    }

    // The longest allowed password, on every path that takes one, while
    // health is asked all along: the hashing runs off the async workers.
    let longest = "Zz9-".repeat(32);
    assert_eq!(longest.len(), 128);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (base, stop) = (s.base.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut answered = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                assert!(health_ok(&base), "health stalled");
                answered += 1;
            }
            answered
        })
    };
    std::thread::scope(|scope| {
        for i in 0..4 {
            let (s, longest) = (&s, &longest);
            scope.spawn(move || {
                s.ok(
                    "POST",
                    "/api/client/create/h1",
                    Some(vm_body(&format!("max{i}"), longest)),
                );
            });
        }
    });
    s.ok(
        "PUT",
        "/api/client/update/h1/max0",
        Some(json!({"os_pass": longest})),
    );
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(watcher.join().unwrap() > 0);
    let seed = std::fs::read(dir.path().join("hosts/h1/vms/max0/seed.img")).unwrap();
    assert!(!String::from_utf8_lossy(&seed).contains(&longest), "hashed");

    // Update and reinstall follow the same rule.
    let (status, v) = s.call(
        "PUT",
        "/api/client/update/h1/max0",
        Some(json!({"os_pass": huge})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("os_pass"), "{v}");
    let (status, v) = s.call(
        "POST",
        "/api/client/reinstall/h1/max0",
        Some(json!({"os_name": "demo", "os_pass": "x".repeat(129)})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("os_pass"), "{v}");
}

// ---- 2. connection floods ----------------------------------------------------

/// Open a TCP connection to `to` from the loopback address `from`.
fn connect_from(rt: &tokio::runtime::Runtime, from: &str, to: SocketAddr) -> tokio::net::TcpStream {
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket.connect(to).await.unwrap()
    })
}

/// Whether the server closed `stream` within `within`.
fn closed_within(
    rt: &tokio::runtime::Runtime,
    stream: &mut tokio::net::TcpStream,
    within: Duration,
) -> bool {
    use tokio::io::AsyncReadExt;
    rt.block_on(async {
        let mut buf = [0u8; 256];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    })
}

#[test]
fn connection_floods_are_dropped_and_health_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(
        dir.path(),
        &[
            ("IRONIDC_TOKEN", TOKEN),
            ("IRONIDC_CONN_PER_ADDRESS", "50"),
            ("IRONIDC_HEADER_TIMEOUT", "2"),
            ("IRONIDC_IDLE_TIMEOUT", "4"),
        ],
        None,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", s.port).parse().unwrap();
    // A flood from one address (127.0.0.2), each socket half a request.
    let mut flood = Vec::new();
    for _ in 0..400 {
        let mut c = connect_from(&rt, "127.0.0.2", addr);
        rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let _ = c.write_all(b"GET / HTTP/1.1\r\n").await;
        });
        flood.push(c);
    }
    // Health from another address answers throughout.
    assert!(health_ok(&s.base), "health during the flood");
    // Past the per-address cap the flood's sockets were closed at once.
    let mut kept = Vec::new();
    let mut closed_now = 0;
    for mut c in flood {
        if closed_within(&rt, &mut c, Duration::from_millis(20)) {
            closed_now += 1;
        } else {
            kept.push(c);
        }
    }
    assert!(closed_now >= 350, "only {closed_now} of 400 closed at once");
    assert!(kept.len() <= 50, "{} admitted", kept.len());
    for c in &mut kept {
        assert!(
            closed_within(&rt, c, Duration::from_secs(5)),
            "slowloris kept"
        );
    }
    // The flooding address may connect again once its sockets are gone.
    let mut again = connect_from(&rt, "127.0.0.2", addr);
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        again
            .write_all(b"GET /api/system/health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
    });
    let mut reply = String::new();
    rt.block_on(async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        let n = again.read(&mut buf).await.unwrap();
        reply.push_str(&String::from_utf8_lossy(&buf[..n]));
    });
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    // An idle keep-alive connection is closed after the idle timeout.
    assert!(
        closed_within(&rt, &mut again, Duration::from_secs(7)),
        "idle kept"
    );
    assert!(health_ok(&s.base));
}

// ---- 3 and 4: a controller with a NAT network in its own namespace ------------

/// A namespace with a controller reachable from the test over a veth pair;
/// (namespace, controller address).
fn controller_namespace(tag: &str, octet: u32) -> (Netns, String) {
    let n = std::process::id() % 100 + octet;
    let ns = Netns::reachable(
        format!("ironidc-{tag}{n}"),
        &format!("ih{tag}{n}o"),
        &format!("ih{tag}{n}i"),
        &format!("10.215.{n}"),
    );
    (ns, format!("10.215.{n}.2"))
}

/// A controller in its own namespace (see `controller_namespace`) with
/// host `h1` on NAT bridge `bridge`: forwards from `ports`, `reserved`
/// ports, a 20-address pool, and a blank, unbootable OS image.
/// Destructure it naming `dir`: the host's files live there.
struct NatController {
    ns: Netns,
    api_ip: String,
    dir: tempfile::TempDir,
    s: Server,
}

fn nat_controller(
    tag: &str,
    octet: u32,
    bridge: &str,
    ports: (u16, u16),
    reserved: Value,
) -> NatController {
    let (ns, api_ip) = controller_namespace(tag, octet);
    let dir = tempfile::tempdir().unwrap();
    let images = blank_image_dir(dir.path());
    let s = Server::start_in_netns(
        &ns.0,
        &api_ip,
        1880,
        dir.path(),
        &[("IRONIDC_TOKEN", TOKEN)],
    );
    s.ok(
        "POST",
        "/api/server/create",
        Some(nat_host(&images, bridge, ports, reserved)),
    );
    NatController { ns, api_ip, dir, s }
}

fn nat_host(images: &Path, bridge: &str, ports: (u16, u16), reserved: Value) -> Value {
    let mut body = host_body("h1", images, "blank.qcow2");
    let config = body["config"].as_object_mut().unwrap();
    config.insert("network_nat".into(), json!(bridge));
    config.insert("ports_start".into(), json!(ports.0));
    config.insert("ports_close".into(), json!(ports.1));
    config.insert("reserved_ports".into(), reserved);
    config.insert(
        "ipaddr_maps".into(),
        json!({"lan": {"vers": "ipv4", "type": "nat", "from": "10.97.0.10", "nums": 20,
                       "gate": "10.97.0.1", "mask": "255.255.255.0"}}),
    );
    body
}

/// `busybox httpd` serving `text` on `addr` inside `ns`, until dropped
/// (with the directory it serves).
struct HostService {
    child: std::process::Child,
    _www: tempfile::TempDir,
}

impl HostService {
    fn start(ns: &Netns, addr: &str, text: &str) -> Self {
        let www = tempfile::tempdir().unwrap();
        std::fs::write(www.path().join("index.html"), text).unwrap();
        let child = Command::new("ip")
            .args([
                "netns", "exec", &ns.0, "busybox", "httpd", "-f", "-p", addr, "-h",
            ])
            .arg(www.path())
            .spawn()
            .unwrap();
        let me = Self { child, _www: www };
        common::wait_until(10, "the host service", || {
            ns.exec(&[
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{addr}/"),
            ])
            .status
            .success()
        });
        me
    }
}

impl Drop for HostService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn forwards_never_take_host_ports_or_local_traffic() {
    let test = "forwards_never_take_host_ports_or_local_traffic";
    if !root_and_tools_available(test) {
        return;
    }
    let NatController {
        ns,
        api_ip,
        dir: _dir,
        s,
    } = nat_controller(
        "fw",
        0,
        "brhard0",
        (80, 21600),
        json!([21510, "21520-21529"]),
    );
    let _sshd_like = HostService::start(&ns, "127.0.0.1:21500", "host service\n");
    let created = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "fw1", "os_name": "demo", "cpu_num": 1, "mem_num": 128,
                    "hdd_num": 64, "nic_all": {"nic0": {"nic_type": "nat"}}}),
        ),
    );
    assert!(created["vm"]["config"]["nic_all"]["nic0"]["ip4_addr"].is_string());
    let natadd = |port: u16| {
        s.call(
            "POST",
            "/api/client/natadd/h1/fw1",
            Some(json!({"protocol": "tcp", "external_port": port, "internal_port": 80})),
        )
    };
    // A host process's port, the controller's own ports, the proxy's and
    // the host's reserved ones are refused with 409 naming the port.
    for (port, why) in [
        (21500, "service of the host"),
        (1880, "ironidc itself"),
        (80, "ironidc itself"),
        (443, "ironidc itself"),
        (21510, "reserved"),
        (21525, "reserved"),
    ] {
        let (status, v) = natadd(port);
        assert_eq!(status, 409, "{port}: {v}");
        let msg = v["msg"].as_str().unwrap();
        assert!(
            msg.contains(&port.to_string()) && msg.contains(why),
            "{port}: {msg}"
        );
    }
    // Picking a port skips all of them.
    let picked = s.ok(
        "POST",
        "/api/client/natadd/h1/fw1",
        Some(json!({"protocol": "both", "external_port": 0, "internal_port": 22})),
    );
    let port = picked["external_port"].as_u64().unwrap() as u16;
    assert!(![80, 443, 1880].contains(&port), "{picked}");
    // A forward exists for 21530; a host process that listens there later
    // keeps its local clients: locally made connections never take it.
    s.ok(
        "POST",
        "/api/client/natadd/h1/fw1",
        Some(json!({"protocol": "tcp", "external_port": 21530, "internal_port": 80})),
    );
    let ruleset =
        String::from_utf8(ns.exec(&["nft", "list", "table", "ip", "ironidc"]).stdout).unwrap();
    assert!(ruleset.contains("21530"), "{ruleset}");
    assert!(!ruleset.contains("hook output"), "{ruleset}");
    let _later = HostService::start(&ns, "0.0.0.0:21530", "still the host\n");
    for url in [
        "http://127.0.0.1:21530/",
        &format!("http://{api_ip}:21530/"),
    ] {
        let out = ns.must(&["busybox", "wget", "-q", "-O", "-", url]);
        assert_eq!(out, "still the host\n", "{url}");
    }
}

/// The task of the last `vm.create` of `uuid`, if the request got that far.
fn create_task(s: &Server, uuid: &str) -> Option<Value> {
    let tasks = s.ok("GET", "/api/system/tasker?hs_name=h1&limit=100", None);
    tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "vm.create" && t["vm_uuid"] == uuid)
        .cloned()
}

#[test]
fn killed_creates_leave_nothing_or_a_whole_vm() {
    let test = "killed_creates_leave_nothing_or_a_whole_vm";
    if !root_and_tools_available(test) {
        return;
    }
    let NatController {
        ns,
        api_ip,
        dir,
        mut s,
    } = nat_controller("kc", 30, "brkill0", (20000, 20100), json!([]));
    let env = [("IRONIDC_TOKEN", TOKEN)];
    // Kill points: fixed delays, and the moments the VM's directory and
    // its disk appear (between the row and the seed).
    let vms_dir = dir.path().join("hosts/h1/vms");
    type KillPoint = Box<dyn Fn(&Path) -> bool>;
    let points: Vec<(&str, KillPoint)> = vec![
        (
            "after 30 ms",
            Box::new({
                let t = Instant::now();
                move |_| t.elapsed() > Duration::from_millis(30)
            }),
        ),
        ("directory", Box::new(|d: &Path| d.exists())),
        ("disk", Box::new(|d: &Path| d.join("disk.qcow2").exists())),
        ("late", Box::new(|d: &Path| d.join("vm.json").exists())),
    ];
    let mut removed = 0;
    for (i, (what, point)) in points.iter().enumerate() {
        let uuid = format!("kill{i}");
        let vm_dir = vms_dir.join(&uuid);
        let base = s.base.clone();
        let body = json!({"vm_uuid": uuid, "os_name": "demo", "cpu_num": 1, "mem_num": 128,
                          "hdd_num": 64, "os_pass": "Kill-Point-2026",
                          "nic_all": {"nic0": {"nic_type": "nat"}, "nic1": {"nic_type": "nat"}}});
        let request = std::thread::spawn(move || {
            let _ = common::http_client_builder()
                .build()
                .unwrap()
                .post(format!("{base}/api/client/create/h1"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send();
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !point(&vm_dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.kill();
        request.join().unwrap();
        s = Server::start_in_netns(&ns.0, &api_ip, 1880, dir.path(), &env);
        let (status, detail) = s.call("GET", &format!("/api/client/detail/h1/{uuid}"), None);
        let Some(task) = create_task(&s, &uuid) else {
            // Killed before the request arrived: nothing may exist.
            assert_eq!(status, 404, "{what}: {detail}");
            assert!(!vm_dir.exists(), "{what}: directory without a task");
            continue;
        };
        assert_ne!(task["status"], "running", "{what}: {task}");
        if status == 404 {
            // Nothing left: no directory, no addresses, and the task says so.
            removed += 1;
            assert!(!vm_dir.exists(), "{what}: directory left behind");
            assert_eq!(task["status"], "failed", "{what}: {task}");
            let error = task["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("removed") || error.contains("nothing of VM"),
                "{what}: the task says what happened: {task}"
            );
        } else {
            // A whole VM: its status answers and its files are complete.
            assert_eq!(status, 200, "{what}: {detail}");
            s.ok("GET", &format!("/api/client/status/h1/{uuid}"), None);
            for file in ["disk.qcow2", "seed.img", "vm.json"] {
                assert!(vm_dir.join(file).exists(), "{what}: {file} missing");
            }
            assert_eq!(task["status"], "succeeded", "{what}: {task}");
        }
        // The pool holds the addresses of whole VMs only (two NICs each).
        let vms = s.ok("GET", "/api/client/detail/h1", None);
        let whole = vms
            .as_object()
            .map(|o| o.len())
            .or(vms.as_array().map(Vec::len))
            .unwrap();
        let pools = s.ok("GET", "/api/server/ipaddr/h1?limit=5", None);
        assert_eq!(
            pools[0]["used"].as_u64(),
            Some(2 * whole as u64),
            "{what}: {pools}"
        );
    }
    assert!(
        removed >= 2,
        "the early kill points must leave nothing: {removed}"
    );
}

// ---- 5. audit of refusals ----------------------------------------------------

#[test]
fn refused_calls_on_another_customers_vm_are_audited_once_each() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let customer = s.role_id("Customer");
    s.add_user("owner1", "Owner-One-2026x", &[customer]);
    s.add_user("prober", "Curious-Cat-2026", &[customer]);
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "victim", "os_name": "demo", "cpu_num": 1, "mem_num": 128,
                    "hdd_num": 64, "owner": "owner1"}),
        ),
    );
    let (prober, _) = s.login("prober", "Curious-Cat-2026");
    let attempts: [(&str, &str, Option<Value>); 8] = [
        ("GET", "/api/client/detail/h1/victim", None),
        ("GET", "/api/client/status/h1/victim", None),
        (
            "POST",
            "/api/client/powers/h1/victim",
            Some(json!({"action": "start"})),
        ),
        (
            "POST",
            "/api/client/snapshot/h1/victim",
            Some(json!({"name": "s1"})),
        ),
        ("GET", "/api/client/snapshot/h1/victim", None),
        ("GET", "/api/client/natget/h1/victim", None),
        (
            "POST",
            "/api/client/natadd/h1/victim",
            Some(json!({"internal_port": 22})),
        ),
        ("GET", "/api/client/remote/h1/victim", None),
    ];
    for (method, path, body) in &attempts {
        let (status, v) = s.call_as(Some(&prober), method, path, body.clone());
        assert_eq!(status, 404, "{method} {path}: {v}");
    }
    let logs = s.admin_ptpb("GET", "/api/audit/opera/get/?page_size=100", None);
    let rows: Vec<&Value> = logs["detail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.to_string().contains("prober") && r.to_string().contains("victim"))
        .collect();
    assert_eq!(rows.len(), attempts.len(), "{rows:#?}");
    for row in rows {
        let text = row.to_string();
        assert!(text.contains("127.0.0.1"), "address: {text}");
        assert!(text.contains("openidcs"), "face: {text}");
        assert!(text.contains("not found"), "outcome: {text}");
    }
}

// ---- 7. partial host updates ---------------------------------------------------

#[test]
fn host_update_is_partial_and_refuses_to_orphan_vms() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let before = s.ok("GET", "/api/server/detail/h1", None);
    s.ok(
        "PUT",
        "/api/server/update/h1",
        Some(json!({"config": {"server_pass": "a-new-host-password"}})),
    );
    let after = s.ok("GET", "/api/server/detail/h1", None);
    assert_eq!(
        before["config"], after["config"],
        "only the password changed"
    );
    s.ok(
        "PUT",
        "/api/server/update/h1",
        Some(json!({"config": {"ports_close": 20050}})),
    );
    let after = s.ok("GET", "/api/server/detail/h1", None);
    assert_eq!(after["config"]["ports_close"], 20050);
    assert_eq!(
        after["config"]["ports_start"],
        before["config"]["ports_start"]
    );
    assert_eq!(
        after["config"]["system_maps"],
        before["config"]["system_maps"]
    );

    s.ok("POST", "/api/client/create/h1", Some(vm_body("keep1", "")));
    let (status, v) = s.call(
        "PUT",
        "/api/server/update/h1",
        Some(json!({"config": {"system_path": dir.path().join("elsewhere")}})),
    );
    assert_eq!(status, 409, "{v}");
    let msg = v["msg"].as_str().unwrap();
    assert!(
        msg.contains("system_path") && msg.contains("keep1"),
        "{msg}"
    );
    let (status, v) = s.call(
        "PUT",
        "/api/server/update/h1",
        Some(json!({"config": {"reserved_ports": ["9000-8000"]}})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("reserved_ports"), "{v}");
    s.ok("GET", "/api/client/status/h1/keep1", None);
}

// ---- 8. root token bounds -------------------------------------------------------

#[test]
fn root_token_must_stay_usable() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    for bad in ["x".repeat(1_000_000), "y".repeat(257), "short-token".into()] {
        let (status, v) = s.call("POST", "/api/system/create", Some(json!({"token": bad})));
        assert!(
            status == 400 || status == 413,
            "{}: {status} {v}",
            bad.len()
        );
        // The root credential still works.
        s.ok("GET", "/api/system/tquery", None);
    }
    let longest = "T".repeat(256);
    let (status, v) = s.call(
        "POST",
        "/api/system/create",
        Some(json!({"token": longest})),
    );
    assert_eq!(status, 200, "{v}");
    let (status, _) = s.call_as(Some(&longest), "GET", "/api/system/tquery", None);
    assert_eq!(status, 200);
}

// ---- lockout replies --------------------------------------------------------------

#[test]
fn lockout_replies_do_not_tell_accounts_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.add_user("realuser", "Real-User-2026x", &[s.role_id("Customer")]);
    let replies = |account: &str| -> Vec<(u16, String)> {
        (0..7)
            .map(|_| {
                let (status, v) = s.ptpb(
                    None,
                    "POST",
                    "/api/rbac/login/",
                    Some(json!({"account": account, "password": "Wrong-Guess-2026"})),
                );
                // Seconds left differ by timing; the words must not.
                let msg: String = v["msg"]
                    .as_str()
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_ascii_digit())
                    .collect();
                (status, msg)
            })
            .collect()
    };
    let real = replies("realuser");
    let ghost = replies("nosuchuser");
    assert_eq!(real, ghost);
    assert_eq!(real.last().unwrap().0, 429, "{real:?}");
}

// ---- host delete ---------------------------------------------------------------

/// Whether a process named `name` runs inside `ns`.
fn runs_in(ns: &Netns, name: &str) -> bool {
    let pids = Command::new("ip")
        .args(["netns", "pids", &ns.0])
        .output()
        .unwrap();
    String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .any(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
}

#[test]
fn host_delete_leaves_no_bridge_dhcp_masquerade_or_backups() {
    let test = "host_delete_leaves_no_bridge_dhcp_masquerade_or_backups";
    if !root_and_tools_available(test) {
        return;
    }
    let NatController { ns, dir, s, .. } =
        nat_controller("hd", 60, "brdel0", (20000, 20100), json!([]));
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "del1", "os_name": "demo", "cpu_num": 1, "mem_num": 128,
                    "hdd_num": 64, "nic_all": {"nic0": {"nic_type": "nat"}}}),
        ),
    );
    let started = s.ok(
        "POST",
        "/api/client/backup/h1/del1",
        Some(json!({"name": "b1"})),
    );
    let task = started["task_id"].as_i64().unwrap();
    common::wait_until(60, "the backup", || {
        s.ok("GET", &format!("/api/system/tasker/{task}"), None)["status"] == "succeeded"
    });
    let backups = dir.path().join("hosts/h1/backups/del1");
    assert!(backups.join("b1.qcow2").exists());
    assert!(ns.exec(&["ip", "link", "show", "brdel0"]).status.success());
    assert!(runs_in(&ns, "dnsmasq"), "DHCP serves the VM");
    let table = ns.must(&["nft", "list", "table", "ip", "ironidc"]);
    assert!(table.contains("brdel0"), "{table}");

    s.ok(
        "DELETE",
        "/api/server/delete/h1?force=true&purge_backups=true",
        None,
    );
    assert!(
        !ns.exec(&["ip", "link", "show", "brdel0"]).status.success(),
        "bridge left"
    );
    assert!(!runs_in(&ns, "dnsmasq"), "dnsmasq left");
    let table = ns.exec(&["nft", "list", "table", "ip", "ironidc"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        !table.contains("brdel0") && !table.contains("masquerade"),
        "{table}"
    );
    assert!(!backups.join("b1.qcow2").exists(), "backup left");
    assert!(
        !dir.path().join("hosts/h1/vms/del1").exists(),
        "VM files left"
    );
}
