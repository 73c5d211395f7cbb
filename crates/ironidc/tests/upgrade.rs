//! A database made by an older ironidc (commit 8b2d4b5, before sqlx's
//! migrator and the OpenIDCS path fix) opens under this binary: its schema
//! history is adopted and upgraded, its host's `images_path`/`system_path`
//! are swapped to OpenIDCS's meaning, and the host, its VM and its user
//! keep working. The fixture is made by `scripts/make-upgrade-fixture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::json;

/// Where the fixture was made; stored paths (and the VM disk's backing
/// file) are absolute, so the files go back to the same place.
const ROOT: &str = "/tmp/ironidc-upgrade-fixture";

fn unpack_fixture() {
    let root = Path::new(ROOT);
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("images")).unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade-8b2d4b5/state.tar.gz"
    );
    let ok = Command::new("tar")
        .args(["-xzf", fixture, "-C", ROOT])
        .status()
        .unwrap();
    assert!(ok.success());
    // The OS image the old VM's disk is a linked clone of.
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(root.join("images/blank.qcow2"))
        .arg("16M")
        .status()
        .expect("qemu-img");
    assert!(ok.success());
}

#[test]
fn a_database_of_the_previous_release_is_upgraded_in_place() {
    if !common::qemu_available("a_database_of_the_previous_release_is_upgraded_in_place") {
        return;
    }
    unpack_fixture();
    let data = Path::new(ROOT).join("data");
    let s = Server::start(&data);

    // The host's paths now mean what OpenIDCS says, pointing where they did.
    let host = s.ok("GET", "/api/server/detail/h1", None);
    assert_eq!(
        host["config"]["images_path"],
        json!(format!("{ROOT}/images"))
    );
    assert_eq!(host["config"]["system_path"], json!(format!("{ROOT}/vms")));
    // The VM counts the host list keeps were filled in by the migration.
    let vm_count = || s.ok("GET", "/api/server/detail", None)["h1"]["vm_count"].clone();
    assert_eq!(vm_count(), json!(1));

    // The old VM's disk is found where the host now says VM disks live.
    s.ok(
        "POST",
        "/api/client/snapshot/h1/old1",
        Some(json!({"name": "s1"})),
    );
    let snaps = s.ok("GET", "/api/client/snapshot/h1/old1", None);
    assert!(snaps.to_string().contains("s1"), "{snaps}");

    // A new VM is cloned from the OS image in images_path (the host's only
    // one, so os_name may be left out) into system_path.
    let created = s.ok(
        "POST",
        "/api/client/create/h1",
        Some(json!({"vm_uuid": "new1", "cpu_num": 1, "mem_num": 256, "hdd_num": 1024})),
    );
    assert_eq!(created["vm"]["config"]["os_name"], json!("blank"));
    assert!(Path::new(ROOT).join("vms/new1/disk.qcow2").exists());

    // Deleting the old VM removes its disk from system_path.
    s.ok("DELETE", "/api/client/delete/h1/old1", None);
    assert!(!Path::new(ROOT).join("vms/old1").exists());
    assert_eq!(vm_count(), json!(1), "one made, one gone");

    // The old user signs in.
    s.login("carol", "Strong-pass-42x");
    s.kill();

    // The adopted history is checksummed: a second start accepts it.
    let s = Server::start(&data);
    let vms = s.ok("GET", "/api/client/detail/h1", None);
    assert!(
        vms.get("new1").is_some() && vms.get("old1").is_none(),
        "{vms}"
    );
    s.kill();
    let _ = std::fs::remove_dir_all(ROOT);
}
