//! An OpenIDCS billing module (WHMCS/SWAPIDC-style) provisioning a VPS on
//! ironidc, with the exact JSON such modules send: numbers as strings,
//! `flu_rst` as `[days, Mbps, last reset]`, `dns1`/`dns2`, and fields
//! ironidc does not model (`vc_pass`, `dat_num`, `own_all`…). Connection
//! test, create, start, password, stop, upgrade and delete, against a
//! real guest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{demo_image_dir, host_body, qemu_available, wait_until, Server};
use serde_json::{json, Value};

const VM: &str = "whmcs-1042";

/// What the module's CreateAccount sends.
fn create_body() -> Value {
    json!({
        "vm_uuid": VM, "vm_name": "srv1042.example.com", "os_name": "demo",
        "os_pass": "Init-Pass-1042", "vc_pass": "vnc-1042", "vc_port": "",
        "cpu_num": "1", "cpu_per": "100", "mem_num": "256", "hdd_num": "1024",
        "hdd_iop": "1000", "gpu_num": "0", "gpu_mem": "0",
        "speed_u": "100", "speed_d": "100", "flu_num": "102400", "flu_rst": [31, 10, 0],
        "nat_num": "10", "web_num": "10", "bak_num": "1", "iso_num": "1",
        "pci_num": "0", "usb_num": "0", "dat_num": "0", "dat_all": "0",
        "hdd_all": {}, "iso_all": {}, "own_all": ["admin"],
        "dns1": "119.29.29.29", "dns2": "223.5.5.5",
        "nic_all": {"nic0": {"nic_type": "nat", "mac_addr": "", "ip4_addr": "",
                             "ip6_addr": "", "nic_gate": "", "nic_mask": "", "dns_addr": []}}
    })
}

fn power(s: &Server, action: &str) -> Value {
    s.ok(
        "POST",
        &format!("/api/client/powers/h1/{VM}"),
        Some(json!({ "action": action })),
    )
}

fn root_shadow(s: &Server) -> String {
    let (code, out) = common::guest_exec(s, VM, "/bin/sh", &["-c", "grep '^root:' /etc/shadow"]);
    assert_eq!(code, 0, "{out}");
    out
}

#[test]
fn a_billing_module_provisions_and_manages_a_vps() {
    if !qemu_available("a_billing_module_provisions_and_manages_a_vps") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &demo_image_dir(), "demo.qcow2")),
    );

    // TestConnection
    let status = s.ok("GET", "/api/server/status", None);
    assert_eq!(status["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(
        (status["host_count"].as_u64(), status["vm_count"].as_u64()),
        (Some(1), Some(0))
    );

    // CreateAccount
    let created = s.ok("POST", "/api/client/create/h1", Some(create_body()));
    let config = &created["vm"]["config"];
    assert_eq!(created["vm_uuid"], VM);
    assert_eq!(
        (config["cpu_num"].as_u64(), config["mem_num"].as_u64()),
        (Some(1), Some(256))
    );
    assert_eq!(
        (config["flu_num"].as_u64(), config["flu_rst"].as_u64()),
        (Some(102400), Some(31))
    );
    assert_eq!(config["vm_name"], "srv1042.example.com");
    assert_eq!(
        config["nic_all"]["nic0"]["dns_addr"],
        json!(["119.29.29.29", "223.5.5.5"])
    );
    assert!(
        !created.to_string().contains("Init-Pass-1042"),
        "no password in replies"
    );
    assert!(!created.to_string().contains("vnc-1042"));

    // Start, by OpenIDCS's state name
    assert_eq!(power(&s, "S_START")["vm_flag"], "STARTED");
    wait_until(120, "the guest's agent", || common::agent_answers(&s, VM));

    // ChangePassword: the module sends os_pass by update; the running guest
    // gets it now through its agent.
    let before = root_shadow(&s);
    let changed = s.ok(
        "PUT",
        &format!("/api/client/update/h1/{VM}"),
        Some(json!({"os_pass": "Changed-Pass-1042"})),
    );
    assert!(
        changed["message"]
            .as_str()
            .unwrap()
            .contains("set in the running guest"),
        "{changed}"
    );
    assert_ne!(root_shadow(&s), before, "the guest's root hash changed");

    // Suspend: a soft stop
    assert_eq!(power(&s, "S_CLOSE")["vm_flag"], "STOPPED");

    // ChangePackage: upgrade while stopped, numbers as strings
    let upgraded = s.ok(
        "PUT",
        &format!("/api/client/update/h1/{VM}"),
        Some(
            json!({"cpu_num": "2", "mem_num": "384", "hdd_num": "2048", "speed_u": "200",
                    "flu_rst": [31, 10, 1700000000], "vc_pass": "vnc-1042"}),
        ),
    );
    assert_eq!(upgraded["applied"], "now", "{upgraded}");
    let vm = s.ok("GET", &format!("/api/client/detail/h1/{VM}"), None);
    assert_eq!(
        (
            vm["config"]["cpu_num"].as_u64(),
            vm["config"]["mem_num"].as_u64()
        ),
        (Some(2), Some(384))
    );
    let disk = dir.path().join("hosts/h1/vms").join(VM).join("disk.qcow2");
    let info = Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(&disk)
        .output()
        .unwrap();
    let info: Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(
        info["virtual-size"],
        json!(2048u64 * 1024 * 1024),
        "the disk grew"
    );

    // An invalid value is refused naming its field; nothing changes.
    let (code, v) = s.call(
        "PUT",
        &format!("/api/client/update/h1/{VM}"),
        Some(json!({"mem_num": "lots"})),
    );
    assert_eq!(code, 400, "{v}");
    assert!(v["msg"].as_str().unwrap().starts_with("mem_num"), "{v}");

    // Unsuspend, then TerminateAccount
    assert_eq!(power(&s, "S_START")["state"], "running");
    s.ok("DELETE", &format!("/api/client/delete/h1/{VM}"), None);
    assert!(!disk.exists(), "the disk is gone");
    let status = s.ok("GET", "/api/server/status", None);
    assert_eq!(
        (
            status["vm_count"].as_u64(),
            status["running_vm_count"].as_u64()
        ),
        (Some(0), Some(0))
    );
}
