//! A remote host driven through `ironidc agent`: the agent runs in its own
//! network namespace with its own data directory, the controller in the
//! root namespace reaches it over a veth pair, and VMs made through the
//! OpenIDCS API land on the agent's side. Needs root and QEMU.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use common::netns::{root_and_tools_available, Netns};
use common::Server;
use serde_json::{json, Value};

const AGENT_PORT: u16 = 18_441;

/// The agent process; killed with the test.
struct Agent {
    child: Child,
    token: String,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent(ns: &Netns, ip: &str, data_dir: &Path) -> Agent {
    let (child, token) = spawn_agent(ns, ip, data_dir);
    Agent {
        child,
        token: token.expect("a first start prints the enrolment token"),
    }
}

/// The agent on `data_dir` again: it keeps its identity (and prints no
/// token).
fn restart_agent(ns: &Netns, ip: &str, data_dir: &Path, token: &str) -> Agent {
    let (child, printed) = spawn_agent(ns, ip, data_dir);
    assert_eq!(printed, None, "a later start prints no token");
    Agent {
        child,
        token: token.to_string(),
    }
}

/// Start `ironidc agent`; returns it once it listens, with the token it
/// printed, if any.
fn spawn_agent(ns: &Netns, ip: &str, data_dir: &Path) -> (Child, Option<String>) {
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            env!("CARGO_BIN_EXE_ironidc"),
            "agent",
        ])
        .arg("--listen")
        .arg(format!("{ip}:{AGENT_PORT}"))
        .arg("--data-dir")
        .arg(data_dir)
        .env("IRONIDC_ACCEL", "tcg")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ironidc agent");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("agent: {line}");
            let _ = tx.send(line);
        }
    });
    let mut token = None;
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the agent prints its token, then that it listens");
        if let Some(t) = line.strip_prefix("enrolment token: ") {
            token = Some(t.to_string());
        }
        if line.starts_with("listening on ") {
            break;
        }
    }
    (child, token)
}

fn remote_host_body(name: &str, ip: &str, token: &str, agent_dir: &Path) -> Value {
    let p = |sub: &str| agent_dir.join(sub).to_string_lossy().into_owned();
    json!({
        "name": name,
        "type": "QEMUServer",
        "config": {
            "server_addr": ip,
            "server_port": AGENT_PORT,
            "server_pass": token,
            "images_path": p("blank-images"),
            "system_path": p("vms"),
            "backup_path": p("backups"),
            "dvdrom_path": p("isos"),
            "system_maps": { "demo": ["blank.qcow2", 0] },
            "server_plan": { "cpu_num": 4, "mem_num": 2048, "hdd_num": 20480 }
        }
    })
}

fn state(s: &Server, host: &str, vm: &str) -> String {
    s.ok("GET", &format!("/api/client/detail/{host}/{vm}"), None)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A token with the same pin and another secret, and one with the same
/// secret and another pin.
fn tampered(token: &str) -> (String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let wrong_secret = format!("{}.{}.{}", parts[0], parts[1], "W".repeat(43));
    let wrong_pin = format!(
        "{}.{}.{}",
        parts[0],
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0x5a_u8; 32]),
        parts[2]
    );
    (wrong_secret, wrong_pin)
}

#[test]
fn a_vm_on_a_remote_host_lives_on_the_agent() {
    if !root_and_tools_available("a_vm_on_a_remote_host_lives_on_the_agent") {
        return;
    }
    let ns = Netns::reachable(
        format!("idc-agent-{}", std::process::id()),
        "idcag0",
        "idcag1",
        "10.231.77",
    );
    let ip = "10.231.77.2";
    let agent_root = tempfile::tempdir().unwrap();
    let agent_dir = std::fs::canonicalize(agent_root.path()).unwrap();
    common::blank_image_dir(&agent_dir);
    let agent = start_agent(&ns, ip, &agent_dir);
    assert!(agent.token.starts_with("idc1."), "{}", agent.token);
    // The token is not stored by the agent: only the secret's hash.
    for entry in std::fs::read_dir(&agent_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let secret = agent.token.rsplit('.').next().unwrap();
            assert!(
                !text.contains(secret),
                "{} holds the secret",
                path.display()
            );
        }
    }

    let ctrl = tempfile::tempdir().unwrap();
    let env = [
        ("IRONIDC_TOKEN", common::TOKEN),
        ("IRONIDC_MONITOR_SECS", "1"),
    ];
    let s = Server::start_with(ctrl.path(), &env, None);
    // A local host beside the remote one, with a VM of its own.
    let images = common::blank_image_dir(ctrl.path());
    s.ok(
        "POST",
        "/api/server/create",
        Some(common::host_body("h1", &images, "blank.qcow2")),
    );
    s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "lvm1", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 16})),
    );

    // A malformed token is refused at host create, naming the field.
    let (status, v) = s.call(
        "POST",
        "/api/server/create",
        Some(remote_host_body("bad", ip, "not-a-token", &agent_dir)),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("config.server_pass"),
        "{v}"
    );

    s.ok(
        "POST",
        "/api/server/create",
        Some(remote_host_body("r1", ip, &agent.token, &agent_dir)),
    );
    let host = s.ok("GET", "/api/server/detail/r1", None);
    assert!(host.to_string().contains(ip), "{host}");

    let created = s.ok(
        "POST",
        "/api/client/create/r1",
        Some(
            json!({"vm_uuid": "rvm1", "os_name": "demo", "cpu_num": 1, "mem_num": 64,
                    "hdd_num": 16, "nic_all": {"nic0": {"nic_type": "nat"}}}),
        ),
    );
    assert_eq!(created["vm"]["state"], "stopped", "{created}");
    let vm_dir = agent_dir.join("vms/rvm1");
    assert!(
        vm_dir.join("disk.qcow2").exists(),
        "the disk is on the agent's side"
    );
    assert!(
        !ctrl.path().join("hosts/r1/vms/rvm1").exists(),
        "nothing of the VM on the controller's side"
    );
    assert_eq!(state(&s, "r1", "rvm1"), "stopped");

    // A blank disk boots firmware only; the QEMU process is what counts.
    let started = s.ok(
        "POST",
        "/api/client/powers/r1/rvm1",
        Some(json!({"action": "start"})),
    );
    assert_eq!(started["state"], "running", "{started}");
    assert_eq!(state(&s, "r1", "rvm1"), "running");

    // The agent goes away (its guests keep running: QEMU is not a process
    // it takes down). The monitor finds the host unreachable: its VM turns
    // unknown; the local host's VM is sampled as before.
    let token = agent.token.clone();
    drop(agent);
    common::wait_until(20, "the remote VM to turn unknown", || {
        state(&s, "r1", "rvm1") == "unknown"
    });
    assert_eq!(
        state(&s, "h1", "lvm1"),
        "stopped",
        "the other host is unaffected"
    );
    // The agent is back: the next pass finds the guest still running.
    let agent = restart_agent(&ns, ip, &agent_dir, &token);
    common::wait_until(20, "the remote VM to be seen running again", || {
        state(&s, "r1", "rvm1") == "running"
    });
    let stopped = s.ok(
        "POST",
        "/api/client/powers/r1/rvm1",
        Some(json!({"action": "hard_stop"})),
    );
    assert_eq!(stopped["state"], "stopped", "{stopped}");
    s.ok("DELETE", "/api/client/delete/r1/rvm1", None);
    assert!(!vm_dir.exists(), "the VM's files are gone on the agent");

    // A wrong secret: the agent answers 401, the API a 503 saying so.
    let (wrong_secret, wrong_pin) = tampered(&agent.token);
    s.ok(
        "POST",
        "/api/server/create",
        Some(remote_host_body("r2", ip, &wrong_secret, &agent_dir)),
    );
    let (status, v) = s.call(
        "POST",
        "/api/client/create/r2",
        Some(json!({"vm_uuid": "rvm2", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 16})),
    );
    assert_eq!(status, 503, "{v}");
    assert!(v["msg"].as_str().unwrap().contains("401"), "{v}");
    assert!(!agent_dir.join("vms/rvm2").exists());

    // Another certificate than the pinned one: refused by the TLS pin.
    s.ok(
        "POST",
        "/api/server/create",
        Some(remote_host_body("r3", ip, &wrong_pin, &agent_dir)),
    );
    let (status, v) = s.call(
        "POST",
        "/api/client/create/r3",
        Some(json!({"vm_uuid": "rvm3", "os_name": "demo", "cpu_num": 1, "mem_num": 64, "hdd_num": 16})),
    );
    assert_eq!(status, 503, "{v}");
    assert!(
        v["msg"].as_str().unwrap().contains("not the enrolled one"),
        "{v}"
    );
    assert!(!agent_dir.join("vms/rvm3").exists());
    drop(agent);
}
