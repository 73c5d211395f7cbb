//! The OpenIDCS face against the real binary: envelopes, hosts, bad
//! input, concurrent creates, tasks, logs and config export/import. VMs
//! here are created but never booted. Authentication and permissions of
//! every endpoint are tested in `authorization.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{blank_image_dir, host_body, Server, TOKEN};
use serde_json::{json, Value};

#[test]
fn hosts_crud_and_secrets_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let images = blank_image_dir(dir.path());
    let s = Server::start(dir.path());

    let engines = s.ok("GET", "/api/system/engine", None);
    assert_eq!(
        engines["engine_types"]["qemu"]["enabled"], true,
        "{engines}"
    );
    assert!(engines["engine_types"]["qemu"]["messages"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));

    let created = s.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "blank.qcow2")),
    );
    assert_eq!(created["type"], "qemu");
    let list = s.ok("GET", "/api/server/detail", None);
    assert_eq!(list["h1"]["status"], "active");
    assert_eq!(list["h1"]["vm_count"], 0);
    let text = list.to_string();
    assert!(
        !text.contains("host-secret-password") && !text.contains("server_pass"),
        "{text}"
    );
    // The stored config is encrypted at rest.
    let db = std::fs::read(dir.path().join("ironidc.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("host-secret-password"));

    let (status, v) = s.call(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "blank.qcow2")),
    );
    assert_eq!(status, 409, "{v}");

    let detail = s.ok("GET", "/api/server/detail/h1?status=true", None);
    assert!(
        detail["status_detail"]["status"]["mem_total"]
            .as_u64()
            .unwrap()
            > 0,
        "{detail}"
    );
    let st = s.ok("GET", "/api/server/status/h1?refresh=true", None);
    assert_eq!(st["source"], "fresh");
    assert!(st["status"]["cpu_total"].as_u64().unwrap() >= 1);
    let st = s.ok("GET", "/api/server/status/h1", None);
    assert_eq!(st["source"], "cached");

    let mut update = host_body("h1", &images, "blank.qcow2");
    update["config"]["ports_start"] = json!(30000);
    update["config"]["ports_close"] = json!(30100);
    update["config"]
        .as_object_mut()
        .unwrap()
        .remove("server_pass");
    let updated = s.ok(
        "PUT",
        "/api/server/update/h1",
        Some(json!({"config": update["config"]})),
    );
    assert_eq!(updated["config"]["ports_start"], 30000);

    let off = s.ok(
        "POST",
        "/api/server/powers/h1",
        Some(json!({"enable": false})),
    );
    assert_eq!(off["enable_host"], false);
    let (status, v) = s.call(
        "POST",
        "/api/client/create/h1",
        Some(json!({"os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64})),
    );
    assert_eq!(status, 409, "a disabled host takes no VM: {v}");
    s.ok(
        "POST",
        "/api/server/powers/h1",
        Some(json!({"enable": true})),
    );

    // Delete is refused while VMs exist, allowed with force.
    s.ok("POST", "/api/client/create/h1", Some(json!({"vm_uuid": "keep1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64})));
    let (status, v) = s.call("DELETE", "/api/server/delete/h1", None);
    assert_eq!(status, 409, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("force"));
    s.ok("DELETE", "/api/server/delete/h1?force=true", None);
    assert_eq!(s.ok("GET", "/api/server/detail", None), json!({}));
    assert!(
        !dir.path().join("hosts/h1/vms/keep1").exists(),
        "force delete removes the VM's files"
    );
}

#[test]
fn bad_input_is_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let images = blank_image_dir(dir.path());
    let s = Server::start(dir.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "blank.qcow2")),
    );

    let long = "x".repeat(65);
    for (name, field) in [
        ("../x", "name"),
        ("", "name"),
        ("é", "name"),
        (long.as_str(), "name"),
        ("a/b", "name"),
    ] {
        let (status, v) = s.call(
            "POST",
            "/api/server/create",
            Some(host_body(name, &images, "blank.qcow2")),
        );
        assert_eq!(status, 400, "{name:?}: {v}");
        assert!(v["msg"].as_str().unwrap().starts_with(field), "{v}");
    }
    let mut bad_image = host_body("h2", &images, "../etc/passwd");
    let (status, v) = s.call("POST", "/api/server/create", Some(bad_image.clone()));
    assert_eq!(status, 400);
    assert!(v["msg"].as_str().unwrap().contains("system_maps"), "{v}");
    bad_image["type"] = json!("HyperVSetup");
    let (status, v) = s.call("POST", "/api/server/create", Some(bad_image));
    assert_eq!(status, 400);
    assert!(v["msg"].as_str().unwrap().starts_with("type"), "{v}");

    // Path parameters that would escape: percent-encoded traversal and non-ASCII.
    for path in [
        "/api/client/detail/%2E%2E%2Fx",
        "/api/client/detail/h1/%2E%2E%2Fx",
        "/api/client/detail/h1/%C3%A9",
    ] {
        let (status, v) = s.call("GET", path, None);
        assert_eq!(status, 400, "{path}: {v}");
    }
    let (status, v) = s.call("GET", "/api/client/detail/nohost", None);
    assert_eq!(status, 404, "{v}");
    let (status, v) = s.call("GET", "/api/client/detail/h1/novm", None);
    assert_eq!(status, 404, "{v}");
    let (status, _) = s.call(
        "POST",
        "/api/client/powers/h1/novm",
        Some(json!({"action": "start"})),
    );
    assert_eq!(status, 404);

    let base =
        json!({"vm_uuid": "v1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64});
    let cases = [
        ("cpu_num", json!(0)),
        ("cpu_num", json!(5)),
        ("mem_num", json!(0)),
        ("mem_num", json!(4096)),
        ("hdd_num", json!(0)),
        ("hdd_num", json!(999_999)),
        ("cpu_num", json!("two")),
        ("vm_uuid", json!("../escape")),
        ("vm_uuid", json!("x".repeat(65))),
        ("os_name", json!("nope")),
        ("nic_all", json!({"nic0": {"mac_addr": "zz:zz"}})),
        ("nic_all", json!({"nic0": {"nic_type": "bridge"}})),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value.clone();
        let (status, v) = s.call("POST", "/api/client/create/h1", Some(body));
        assert_eq!(status, 400, "{field}={value}: {v}");
        assert!(
            v["msg"].as_str().unwrap().starts_with(field),
            "{field}: {v}"
        );
    }
    for (path, body) in [
        ("/api/client/create/h1", "{not json"),
        ("/api/client/create/h1", "[1,2]"),
        ("/api/server/create", "{\"name\": "),
        ("/api/client/powers/h1/v1", "nul"),
    ] {
        let (status, v) = s.raw("POST", path, body);
        assert_eq!(status, 400, "{path} {body}: {v}");
        assert_eq!(v["code"], 400);
    }
    // Nothing half-made: no VM row, no disk.
    assert_eq!(s.ok("GET", "/api/client/detail/h1", None), json!({}));
    assert!(!dir.path().join("hosts/h1/vms/v1").exists());

    let vm = s.ok("POST", "/api/client/create/h1", Some(base.clone()));
    assert_eq!(vm["vm_uuid"], "v1");
    let (status, v) = s.call(
        "POST",
        "/api/client/powers/h1/v1",
        Some(json!({"action": "explode"})),
    );
    assert_eq!(status, 400);
    assert!(v["msg"].as_str().unwrap().starts_with("action"));
    let (status, v) = s.call(
        "PUT",
        "/api/client/update/h1/v1",
        Some(json!({"hdd_num": 32})),
    );
    assert_eq!(status, 400, "disks only grow: {v}");
    assert!(v["msg"].as_str().unwrap().starts_with("hdd_num"));
    let (status, _) = s.call("GET", "/api/system/tasker?limit=0", None);
    assert_eq!(status, 400);
}

#[test]
fn vm_create_update_delete_tasks_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());

    // A blank vm_uuid is generated and returned; the password never comes back.
    let created = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "", "os_name": "demo", "os_pass": "guest-pass-123", "cpu_num": 1, "mem_num": 128, "hdd_num": 256,
                    "nic_all": {"ethernet0": {"nic_type": "nat"}}})),
    );
    let uuid = created["vm_uuid"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36, "{created}");
    assert!(created["task_id"].as_i64().unwrap() > 0);
    let mac = created["vm"]["config"]["nic_all"]["ethernet0"]["mac_addr"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(mac.starts_with("52:54:00:"), "{mac}");
    assert!(!created.to_string().contains("guest-pass-123"));

    // The disk is a linked clone of the image, grown to hdd_num.
    let disk = dir.path().join(format!("hosts/h1/vms/{uuid}/disk.qcow2"));
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&disk)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert!(
        info["backing-filename"]
            .as_str()
            .unwrap()
            .ends_with("blank.qcow2"),
        "{info}"
    );
    assert_eq!(info["virtual-size"].as_u64().unwrap(), 256 * 1024 * 1024);

    let list = s.ok("GET", "/api/client/detail/h1", None);
    assert_eq!(list[&uuid]["state"], "stopped");
    assert_eq!(list[&uuid]["vm_flag"], "STOPPED");
    let updated = s.ok(
        "PUT",
        &format!("/api/client/update/h1/{uuid}"),
        Some(json!({"cpu_num": 2, "mem_num": 256, "hdd_num": 512})),
    );
    assert_eq!(updated["applied"], "now");
    assert_eq!(updated["vm"]["config"]["cpu_num"], 2);
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&disk)
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["virtual-size"].as_u64().unwrap(), 512 * 1024 * 1024);

    let stats = s.ok("GET", "/api/system/statis", None);
    let counts = |v: &serde_json::Value| json!({"host_count": v["host_count"], "vm_count": v["vm_count"], "running_vm_count": v["running_vm_count"]});
    assert_eq!(
        counts(&stats),
        json!({"host_count": 1, "vm_count": 1, "running_vm_count": 0})
    );
    // One controller on SQLite: it answers and runs the jobs.
    assert!(
        stats["controller"].as_str().unwrap().contains('#'),
        "{stats}"
    );
    assert_eq!(stats["job_owner"], stats["controller"], "{stats}");

    s.ok("DELETE", &format!("/api/client/delete/h1/{uuid}"), None);
    assert!(!disk.exists());
    assert_eq!(s.ok("GET", "/api/client/detail/h1", None), json!({}));

    // Tasks and logs: newest first, filtered by host, limited.
    let tasks = s.ok("GET", "/api/system/tasker?hs_name=h1&limit=100", None);
    let kinds: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["vm.delete", "vm.update", "vm.create", "host.create"],
        "{tasks}"
    );
    assert!(tasks
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "succeeded" && t["progress"] == 100));
    let one = s.ok("GET", "/api/system/tasker?hs_name=h1&limit=1", None);
    assert_eq!(one.as_array().unwrap().len(), 1);
    let logs = s.ok("GET", "/api/system/logger/detail?hs_name=h1", None);
    let first = &logs.as_array().unwrap()[0];
    assert_eq!(first["action"], "vm.delete");
    assert_eq!(first["actor"], "admin");
    assert_eq!(first["source_ip"], "127.0.0.1");
    assert_eq!(first["ok"], true);
    // A refused create is logged as failed.
    let (status, _) = s.call(
        "POST",
        "/api/client/create/h1",
        Some(json!({"os_name": "demo", "cpu_num": 0, "mem_num": 128, "hdd_num": 64})),
    );
    assert_eq!(status, 400);
    let logs = s.ok("GET", "/api/system/logger/detail?hs_name=h1&limit=1", None);
    assert_eq!(logs[0]["ok"], false);
    assert!(logs[0]["message"].as_str().unwrap().contains("cpu_num"));
}

#[test]
fn concurrent_creates_of_one_name_exactly_one_wins() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let body =
        json!({"vm_uuid": "race", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64});
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    s.call("POST", "/api/client/create/h1", Some(body.clone()))
                        .0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|&&c| c == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&c| c == 200 || c == 409),
        "{statuses:?}"
    );
    let list = s.ok("GET", "/api/client/detail/h1", None);
    assert_eq!(list.as_object().unwrap().len(), 1);
    assert!(dir.path().join("hosts/h1/vms/race/disk.qcow2").exists());
}

#[test]
fn tokens_reset_set_and_first_start() {
    let dir = tempfile::tempdir().unwrap();
    // Without IRONIDC_TOKEN a token is generated, printed once, stored hashed.
    let mut s = Server::start_with(dir.path(), &[], None);
    let mut out = s.child.stdout.take().unwrap();
    let mut line = String::new();
    use std::io::Read;
    let mut buf = [0u8; 512];
    while !line.contains('\n') {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "no token printed");
        line.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let generated = line
        .lines()
        .next()
        .unwrap()
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    assert!(generated.len() >= 32, "{line}");
    let (status, info) = s.call_as(Some(&generated), "GET", "/api/token/current", None);
    assert_eq!(status, 200);
    assert_eq!(info["data"]["token_set"], true);
    assert!(
        !info.to_string().contains(&generated),
        "the token is never shown again"
    );
    let db = std::fs::read(dir.path().join("ironidc.db")).unwrap();
    assert!(
        !String::from_utf8_lossy(&db).contains(&generated),
        "stored only as a hash"
    );

    let (status, v) = s.call_as(
        Some(&generated),
        "POST",
        "/api/system/create",
        Some(json!({"token": "short"})),
    );
    assert_eq!(status, 400);
    assert!(v["msg"].as_str().unwrap().starts_with("token"));
    let (status, _) = s.call_as(
        Some(&generated),
        "POST",
        "/api/token/set",
        Some(json!({"token": TOKEN})),
    );
    assert_eq!(status, 200);
    let (status, _) = s.call_as(Some(&generated), "GET", "/api/system/tquery", None);
    assert_eq!(status, 401, "the old token is gone");
    let reset = s.ok("POST", "/api/system/resets", None);
    let fresh = reset["token"].as_str().unwrap().to_string();
    let (status, _) = s.call_as(Some(TOKEN), "GET", "/api/system/tquery", None);
    assert_eq!(status, 401);
    let (status, _) = s.call_as(Some(&fresh), "GET", "/api/system/tquery", None);
    assert_eq!(status, 200);
    drop(s);
    // A restart keeps the token; IRONIDC_TOKEN only applies on first start.
    let s = Server::start_with(
        dir.path(),
        &[("IRONIDC_TOKEN", "another-token-1234567890")],
        None,
    );
    let (status, _) = s.call_as(Some(&fresh), "GET", "/api/system/statis", None);
    assert_eq!(status, 200);
    let (status, _) = s.call_as(
        Some("another-token-1234567890"),
        "GET",
        "/api/system/statis",
        None,
    );
    assert_eq!(status, 401);
}

#[test]
fn config_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    s.ok("POST", "/api/client/create/h1", Some(json!({"vm_uuid": "v1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64})));
    let exported = s.ok("POST", "/api/system/saving", None);
    assert_eq!(exported["hosts"][0]["name"], "h1");
    assert_eq!(exported["vms"][0]["config"]["vm_uuid"], "v1");
    assert!(!exported.to_string().contains("host-secret-password"));

    // Into a fresh controller sharing the host's disks: the host is created,
    // the VM (whose disk exists) imported, a VM without a disk skipped.
    let dir2 = tempfile::tempdir().unwrap();
    let s2 = Server::start(dir2.path());
    let mut cfg = exported.clone();
    cfg["hosts"][0]["config"]["system_path"] =
        json!(dir.path().join("hosts/h1/vms").to_string_lossy());
    let mut ghost = cfg["vms"][0].clone();
    ghost["config"]["vm_uuid"] = json!("ghost");
    cfg["vms"].as_array_mut().unwrap().push(ghost);
    let report = s2.ok("POST", "/api/system/loader", Some(cfg));
    assert_eq!(report["hosts_created"], json!(["h1"]));
    assert_eq!(report["vms_imported"], json!(["h1/v1"]));
    assert_eq!(
        report["vms_skipped"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    let list = s2.ok("GET", "/api/client/detail/h1", None);
    assert!(list.get("v1").is_some() && list.get("ghost").is_none());
    let (status, _) = s2.call("POST", "/api/system/loader", Some(json!({"version": 99})));
    assert_eq!(status, 400);
}

#[test]
fn connection_test_and_openidcs_power_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "vm1", "os_name": "demo", "cpu_num": 1, "mem_num": 128, "hdd_num": 64})),
    );
    // The connection test of OpenIDCS billing modules.
    let test = s.ok("GET", "/api/server/status", None);
    assert_eq!(test["host_count"], 1, "{test}");
    assert_eq!(test["vm_count"], 1, "{test}");
    assert_eq!(test["running_vm_count"], 0, "{test}");
    assert!(
        test["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{test}"
    );
    // OpenIDCS state names are power actions: pausing a stopped VM is a
    // wrong state (409), not an unknown action (400).
    for action in ["S_PAUSE", "a_pause"] {
        let (status, v) = s.call(
            "POST",
            "/api/client/powers/h1/vm1",
            Some(json!({"action": action})),
        );
        assert_eq!(status, 409, "{action}: {v}");
    }
    let (status, v) = s.call(
        "POST",
        "/api/client/powers/h1/vm1",
        Some(json!({"action": "S_BOGUS"})),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("action"), "{v}");
}

#[test]
fn all_vms_across_hosts_paged_and_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let images = common::blank_image_dir(dir.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(common::host_body("h2", &images, "blank.qcow2")),
    );
    let customer = s.role_id("Customer");
    s.add_user("carol", "Owns-three-vms-7", &[customer]);
    let mut ids = Vec::new();
    for (host, vm, owner) in [
        ("h1", "a1", None),
        ("h2", "b1", Some("carol")),
        ("h1", "a2", None),
    ] {
        let mut body = json!({"vm_uuid": vm, "cpu_num": 1, "mem_num": 64, "hdd_num": 64});
        if let Some(o) = owner {
            body["owner"] = json!(o);
        }
        let created = s.ok("POST", &format!("/api/client/create/{host}"), Some(body));
        ids.push(created["vm"]["id"].as_i64().unwrap());
    }

    // The operator sees all three, across hosts, a page at a time, by id.
    let page1 = s.ok("GET", "/api/client/detail?page=1&page_size=2", None);
    assert_eq!(page1["total"], 3, "{page1}");
    let names: Vec<&str> = page1["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a1", "b1"]);
    let page2 = s.ok("GET", "/api/client/detail?page=2&page_size=2", None);
    assert_eq!(page2["vms"][0]["uuid"], "a2");
    assert_eq!(page2["vms"][0]["hs_name"], "h1");
    let (status, v) = s.call("GET", "/api/client/detail?page_size=5000", None);
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("page_size"), "{v}");

    // By id: the VM wherever it is.
    let b1 = s.ok("GET", &format!("/api/client/vmid/{}", ids[1]), None);
    assert_eq!(
        (b1["uuid"].as_str(), b1["hs_name"].as_str()),
        (Some("b1"), Some("h2"))
    );

    // A customer sees their own only; another's id is "not found".
    let (carol, _) = s.login("carol", "Owns-three-vms-7");
    let (status, mine) = s.call_as(Some(&carol), "GET", "/api/client/detail", None);
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["data"]["total"], 1);
    assert_eq!(mine["data"]["vms"][0]["uuid"], "b1");
    let (status, _) = s.call_as(
        Some(&carol),
        "GET",
        &format!("/api/client/vmid/{}", ids[1]),
        None,
    );
    assert_eq!(status, 200);
    let (status, v) = s.call_as(
        Some(&carol),
        "GET",
        &format!("/api/client/vmid/{}", ids[0]),
        None,
    );
    assert_eq!(status, 404, "{v}");
    assert!(
        !v.to_string().contains("a1"),
        "the refusal names no one else's VM: {v}"
    );
}

#[test]
fn host_vm_list_pages_in_the_store_and_selects_fields() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let images = common::blank_image_dir(dir.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(common::host_body("h2", &images, "blank.qcow2")),
    );
    let customer = s.role_id("Customer");
    s.add_user("dave", "Owns-one-vm-here-7", &[customer]);
    for (host, vm, owner) in [
        ("h1", "a1", None),
        ("h2", "b1", None),
        ("h1", "a2", None),
        ("h1", "c1", Some("dave")),
        ("h1", "a3", None),
    ] {
        let mut body = json!({"vm_uuid": vm, "cpu_num": 1, "mem_num": 64, "hdd_num": 64});
        if let Some(o) = owner {
            body["owner"] = json!(o);
        }
        s.ok("POST", &format!("/api/client/create/{host}"), Some(body));
    }
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let uuids = |page: &Value| -> Vec<String> {
        page["vms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["uuid"].as_str().unwrap().to_string())
            .collect()
    };

    // Unpaged: today's shape, the host's VMs by vm_uuid, whole.
    let all = s.ok("GET", "/api/client/detail/h1", None);
    assert_eq!(keys(&all), ["a1", "a2", "a3", "c1"], "{all}");
    assert_eq!(all["a2"]["config"]["cpu_num"], 1, "{all}");
    assert_eq!(all["a2"]["hs_name"], "h1");
    assert_eq!(all["a2"]["vm_flag"], "STOPPED");

    // Unpaged with a selection: the same map, each VM cut to the fields.
    let cut = s.ok("GET", "/api/client/detail/h1?fields=uuid,%20vm_flag", None);
    assert_eq!(keys(&cut), ["a1", "a2", "a3", "c1"]);
    assert_eq!(keys(&cut["a1"]), ["uuid", "vm_flag"], "{cut}");

    // Paged: the shape of the list across hosts, this host's VMs by id.
    let page1 = s.ok("GET", "/api/client/detail/h1?page=1&page_size=2", None);
    assert_eq!(
        (&page1["total"], &page1["page"], &page1["page_size"]),
        (&json!(4), &json!(1), &json!(2)),
        "{page1}"
    );
    assert_eq!(uuids(&page1), ["a1", "a2"]);
    assert!(page1["vms"][0]["config"].is_object(), "whole VMs: {page1}");
    let page2 = s.ok(
        "GET",
        "/api/client/detail/h1?page=2&page_size=2&fields=uuid,state,owner_id",
        None,
    );
    assert_eq!(uuids(&page2), ["c1", "a3"], "{page2}");
    assert_eq!(keys(&page2["vms"][0]), ["owner_id", "state", "uuid"]);
    assert_eq!(page2["vms"][1]["state"], "stopped");
    let past = s.ok("GET", "/api/client/detail/h1?page=3&page_size=2", None);
    assert_eq!((past["total"].as_i64(), uuids(&past).len()), (Some(4), 0));
    let defaults = s.ok("GET", "/api/client/detail/h1?page_size=3", None);
    assert_eq!(
        (defaults["page"].as_i64(), uuids(&defaults).len()),
        (Some(1), 3)
    );
    let other = s.ok("GET", "/api/client/detail/h2?page=1", None);
    assert_eq!(
        (other["total"].as_i64(), other["page_size"].as_i64()),
        (Some(1), Some(100))
    );

    // Bad parameters are refused, naming the parameter.
    for (query, field) in [
        ("fields=uuid,colour", "fields"),
        ("fields=,", "fields"),
        ("page=1&fields=nope", "fields"),
        ("page=0", "page"),
        ("page_size=1001", "page_size"),
    ] {
        let (status, v) = s.call("GET", &format!("/api/client/detail/h1?{query}"), None);
        assert_eq!(status, 400, "{query}: {v}");
        assert!(
            v["msg"].as_str().unwrap().starts_with(field),
            "{query}: {v}"
        );
    }
    let (status, _) = s.call("GET", "/api/client/detail/nohost?page=1", None);
    assert_eq!(status, 404);

    // A customer's page holds their own VMs only, and counts only those.
    let (dave, _) = s.login("dave", "Owns-one-vm-here-7");
    let (status, mine) = s.call_as(
        Some(&dave),
        "GET",
        "/api/client/detail/h1?page=1&page_size=10&fields=uuid",
        None,
    );
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["data"]["total"], 1);
    assert_eq!(mine["data"]["vms"], json!([{"uuid": "c1"}]));
}

#[test]
fn a_mac_the_caller_chose_that_is_taken_is_refused_a_drawn_one_never() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_blank_host(dir.path());
    let nic = |mac: &str| json!({"nic0": {"nic_type": "nat", "mac_addr": mac}});
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "first", "cpu_num": 1, "mem_num": 64, "hdd_num": 64,
                    "nic_all": nic("52:54:00:AA:BB:CC")}),
        ),
    );
    // The same MAC, chosen by the caller (in another case): a 400 naming
    // nic_all, and no VM.
    let (status, v) = s.call(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "second", "cpu_num": 1, "mem_num": 64, "hdd_num": 64,
                    "nic_all": nic("52:54:00:aa:bb:cc")}),
        ),
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("nic_all"), "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("52:54:00:aa:bb:cc"),
        "{v}"
    );
    let (status, _) = s.call("GET", "/api/client/detail/h1/second", None);
    assert_eq!(status, 404);

    // NICs without a MAC get distinct free ones, beside a chosen one.
    let created = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(
            json!({"vm_uuid": "third", "cpu_num": 1, "mem_num": 64, "hdd_num": 64,
                    "nic_all": {"nic0": {"nic_type": "nat"}, "nic1": {"nic_type": "nat"},
                                "nic2": {"nic_type": "nat", "mac_addr": "52:54:00:00:00:01"}}}),
        ),
    );
    let nics = &created["vm"]["config"]["nic_all"];
    let macs: std::collections::BTreeSet<&str> = ["nic0", "nic1", "nic2"]
        .iter()
        .map(|n| nics[n]["mac_addr"].as_str().unwrap())
        .collect();
    assert_eq!(macs.len(), 3, "{nics}");
    assert!(macs.contains("52:54:00:00:00:01"));
    assert!(!macs.contains("52:54:00:aa:bb:cc"));
}
