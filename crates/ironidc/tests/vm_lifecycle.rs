//! A real guest through the OpenIDCS face: create from the demo image,
//! boot to the guest's marker on the serial console, ACPI stop, resets,
//! pause/resume, a controller killed and restarted while the VM runs,
//! scan, delete. One guest at a time keeps CI within its budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{demo_image_dir, host_body, qemu_available, wait_until, Server};
use serde_json::json;

const MARKER: &str = "IRONIDC-DEMO-READY";

fn serial_markers(vm_dir: &Path) -> usize {
    std::fs::read_to_string(vm_dir.join("serial.log"))
        .map(|s| s.matches(MARKER).count())
        .unwrap_or(0)
}

fn qemu_pid(vm_dir: &Path) -> i32 {
    std::fs::read_to_string(vm_dir.join("qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A live (not zombie) process. In a container whose init does not reap,
/// an exited, re-parented QEMU can linger as a zombie.
fn process_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn state(s: &Server, uuid: &str) -> String {
    s.ok("GET", &format!("/api/client/detail/h1/{uuid}"), None)["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn vm_lifecycle_with_a_real_guest() {
    if !qemu_available("vm_lifecycle_with_a_real_guest") {
        return;
    }
    let images = demo_image_dir();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "demo.qcow2")),
    );
    let created = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "guest1", "os_name": "demo", "cpu_num": 1, "mem_num": 256, "hdd_num": 128,
                    "nic_all": {"nic0": {"nic_type": "nat"}}})),
    );
    assert_eq!(created["vm"]["state"], "stopped");
    let vm_dir = dir.path().join("hosts/h1/vms/guest1");

    // start -> the guest prints its marker on the serial console
    let started = s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "start"})),
    );
    assert_eq!(started["state"], "running");
    assert_eq!(started["vm_flag"], "STARTED");
    wait_until(90, "the guest's boot marker", || {
        serial_markers(&vm_dir) >= 1
    });
    let (status, v) = s.call(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "start"})),
    );
    assert_eq!(status, 409, "already running: {v}");
    assert_eq!(
        s.ok("GET", "/api/system/statis", None)["running_vm_count"],
        1
    );
    assert!(
        !vm_dir.join("vnc.sock").to_string_lossy().is_empty() && vm_dir.join("vnc.sock").exists(),
        "VNC on a unix socket"
    );

    // hard_reset: the guest boots again (a second marker)
    s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "hard_reset"})),
    );
    wait_until(90, "a second boot after hard_reset", || {
        serial_markers(&vm_dir) >= 2
    });
    // reset (soft): ACPI power-off, then a new QEMU process (a new serial log)
    let before = qemu_pid(&vm_dir);
    s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "reset"})),
    );
    assert_ne!(
        qemu_pid(&vm_dir),
        before,
        "a soft reset starts a new process"
    );
    wait_until(90, "a boot after reset", || serial_markers(&vm_dir) >= 1);

    // pause / resume
    let paused = s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "pause"})),
    );
    assert_eq!(paused["state"], "paused");
    assert_eq!(paused["vm_flag"], "SUSPEND");
    let resumed = s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "resume"})),
    );
    assert_eq!(resumed["state"], "running");

    // a change while running waits for the next start, and says so
    let updated = s.ok(
        "PUT",
        "/api/client/update/h1/guest1",
        Some(json!({"mem_num": 320, "hdd_num": 192})),
    );
    assert_eq!(updated["applied"], "next_start");
    assert_eq!(updated["vm"]["pending_restart"], true);

    // status: power state and a history that grows
    let st = s.ok("GET", "/api/client/status/h1/guest1?limit=10", None);
    assert_eq!(st["power_status"], "STARTED");
    assert!(st["current"]["mem_usage"].as_u64().unwrap() > 0, "{st}");
    assert!(!st["history"].as_array().unwrap().is_empty());

    // The controller dies (SIGKILL); the VM keeps running; a new controller
    // re-attaches and manages it.
    let port = s.port;
    s.kill();
    let pid = qemu_pid(&vm_dir);
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "QEMU survives the controller"
    );
    let s = Server::start_with(dir.path(), &[], Some(port));
    assert_eq!(state(&s, "guest1"), "running");
    assert_eq!(
        s.ok("GET", "/api/system/statis", None)["running_vm_count"],
        1
    );

    // stop = ACPI power button; the guest powers itself off
    let stopped = s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "stop"})),
    );
    assert_eq!(stopped["state"], "stopped");
    assert!(!process_alive(pid), "the QEMU process is gone");
    // the pending change is applied at this start
    s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "start"})),
    );
    let vm = s.ok("GET", "/api/client/detail/h1/guest1", None);
    assert_eq!(vm["pending_restart"], false);
    assert_eq!(vm["config"]["mem_num"], 320);
    wait_until(90, "boot after restart", || serial_markers(&vm_dir) >= 1);
    let stopped = s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "hard_stop"})),
    );
    assert_eq!(stopped["state"], "stopped");

    // A guest that powers itself off is noticed by the reconciler.
    s.ok(
        "POST",
        "/api/client/powers/h1/guest1",
        Some(json!({"action": "start"})),
    );
    wait_until(90, "boot", || serial_markers(&vm_dir) >= 1);
    let pid = qemu_pid(&vm_dir);
    unsafe_kill(pid);
    wait_until(30, "the reconciler to see the VM stopped", || {
        state(&s, "guest1") == "stopped"
    });

    // scan: a VM on the host that the database lacks is imported
    let tasks = s.ok("GET", "/api/system/tasker?hs_name=h1", None);
    assert!(tasks
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "vm.power.stop" && t["status"] == "succeeded"));
    std::fs::rename(&vm_dir, dir.path().join("hosts/h1/vms/guest2")).unwrap();
    let mut def: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("hosts/h1/vms/guest2/vm.json")).unwrap(),
    )
    .unwrap();
    def["uuid"] = json!("guest2");
    std::fs::write(
        dir.path().join("hosts/h1/vms/guest2/vm.json"),
        def.to_string(),
    )
    .unwrap();
    // guest2 is a copy of guest1, MAC included: not imported while guest1
    // holds that MAC, and the reply says why.
    let scan = s.ok(
        "POST",
        "/api/client/scaner/h1",
        Some(json!({"prefix": "guest"})),
    );
    assert_eq!(scan["added"], 0, "{scan}");
    assert_eq!(scan["skipped"][0]["vm_uuid"], "guest2", "{scan}");
    assert!(
        scan["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("mac_addr"),
        "{scan}"
    );
    // guest1's row goes (its files moved away), then guest2 comes in.
    s.ok("DELETE", "/api/client/delete/h1/guest1", None);
    let scan = s.ok(
        "POST",
        "/api/client/scaner/h1",
        Some(json!({"prefix": "guest"})),
    );
    assert_eq!(scan["added"], 1, "{scan}");
    assert_eq!(scan["added_vms"], json!(["guest2"]));
    let list = s.ok("GET", "/api/client/detail/h1", None);
    assert_eq!(list["guest2"]["config"]["os_name"], "demo");
    let again = s.ok("POST", "/api/client/scaner/h1", None);
    assert_eq!(again["added"], 0);

    // delete removes rows and disks
    s.ok("DELETE", "/api/client/delete/h1/guest2", None);
    assert!(!dir.path().join("hosts/h1/vms/guest2").exists());
    let stats = s.ok("GET", "/api/system/statis", None);
    assert_eq!(
        (
            &stats["host_count"],
            &stats["vm_count"],
            &stats["running_vm_count"]
        ),
        (&json!(1), &json!(0), &json!(0)),
        "{stats}"
    );
}

#[test]
fn stop_times_out_with_a_clear_error_when_the_guest_ignores_acpi() {
    if !qemu_available("stop_times_out") {
        return;
    }
    // A boot sector that spins forever: it never answers the power button.
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let mut sector = vec![0u8; 512];
    sector[0] = 0xEB;
    sector[1] = 0xFE;
    sector[510] = 0x55;
    sector[511] = 0xAA;
    let raw = images.join("spin.raw");
    std::fs::write(&raw, &sector).unwrap();
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(images.join("spin.qcow2"))
        .status()
        .unwrap();
    assert!(status.success());
    let s = Server::start_with(
        dir.path(),
        &[
            ("IRONIDC_TOKEN", common::TOKEN),
            ("IRONIDC_STOP_TIMEOUT", "3"),
        ],
        None,
    );
    s.ok(
        "POST",
        "/api/server/create",
        Some(host_body("h1", &images, "spin.qcow2")),
    );
    s.ok("POST", "/api/client/create/h1", Some(json!({"vm_uuid": "spin", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 16})));
    s.ok(
        "POST",
        "/api/client/powers/h1/spin",
        Some(json!({"action": "start"})),
    );
    let (status, v) = s.call(
        "POST",
        "/api/client/powers/h1/spin",
        Some(json!({"action": "stop"})),
    );
    assert_eq!(status, 504, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("hard_stop"), "{v}");
    assert_eq!(state(&s, "spin"), "running");
    let tasks = s.ok("GET", "/api/system/tasker?hs_name=h1&limit=1", None);
    assert_eq!(tasks[0]["status"], "failed");
    assert!(tasks[0]["error"]
        .as_str()
        .unwrap()
        .contains("did not power off"));
    s.ok("DELETE", "/api/client/delete/h1/spin", None);
}

fn unsafe_kill(pid: i32) {
    let status = std::process::Command::new("kill")
        .arg("-9")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
