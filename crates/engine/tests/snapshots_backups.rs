//! Snapshots, backups and reinstall of the QEMU engine against real QEMU
//! (TCG) and real qcow2 files: disk contents are written with `qemu-io` and
//! checked with `qemu-io read -P` and `qemu-img compare`; guest memory is
//! checked through a boot sector that counts in RAM.
//!
//! Needs `qemu-system-x86_64`, `qemu-img` and `qemu-io` (packages
//! qemu-system-x86, qemu-utils); skipped with a message when they are
//! missing, except in CI (env `CI` set). One VM runs at a time, and every VM
//! left running by a failing test is killed when its host fixture drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ironidc_core::engine::{
    Engine, EngineError, HostContext, NoProgress, PowerAction, PowerState, VmSpec,
};
use ironidc_engine::qemu::QemuEngine;
use serde_json::Value;
use support::engine::{hmp, power, qemu_img_json, qmp, tcg_engine, Recorder, ONE_VM_AT_A_TIME};
use support::guest::{loop_sector, sector, wait_for_boots, write_disk};
use support::host::TestHost;
use support::tools::tools_available;
use support::{LONG, MIB};

/// The qdev path of the system disk's backend, for HMP `qemu-io -d`.
const DISK_QDEV: &str = "/machine/peripheral/virtio-disk0/virtio-backend";
/// Physical address of the guest's 64-bit loop counter.
const COUNTER_ADDR: u32 = 0x500;

fn tools_installed() -> bool {
    tools_available(
        &["qemu-system-x86_64", "qemu-img", "qemu-io"],
        "qemu-system-x86 qemu-utils",
    )
}

// ---- guests ----------------------------------------------------------------

/// A boot sector that prints `BOOT_MESSAGE` on COM1, then counts forever in
/// a 64-bit integer at `COUNTER_ADDR`, so the guest's memory changes all the
/// time and a revert with memory visibly puts the count back.
///
/// ```text
/// loop: add dword [0x500],1 ; adc dword [0x504],0 ; jmp loop
/// ```
fn counter_sector() -> [u8; 512] {
    sector(&[
        0x66, 0x83, 0x06, 0x00, 0x05, 0x01, // add dword [0x0500], 1
        0x66, 0x83, 0x16, 0x04, 0x05, 0x00, // adc dword [0x0504], 0
        0xEB, 0xF2, // jmp loop
    ])
}

/// A test host whose base images are `counter.raw` and `loop.raw`.
fn test_host() -> TestHost {
    let host = TestHost::new();
    write_disk(&host.image("counter.raw"), &counter_sector(), MIB);
    write_disk(&host.image("loop.raw"), &loop_sector(), MIB);
    host
}

/// `support::host::spec` with 64 MiB of memory: the memory revert test
/// below relies on that size.
fn spec(uuid: &str, image: &str, hdd_mb: u64) -> VmSpec {
    VmSpec {
        mem_mb: 64,
        ..support::host::spec(uuid, image, hdd_mb)
    }
}

/// Start the VM and wait until its guest printed its boot message.
async fn start(engine: &QemuEngine, h: &HostContext, uuid: &str) {
    power(engine, h, uuid, PowerAction::Start).await;
    let serial = engine.vm_files(h, uuid).unwrap().serial_log;
    wait_for_boots(&serial, 1, LONG).await;
}

async fn hard_stop(engine: &QemuEngine, h: &HostContext, uuid: &str) {
    power(engine, h, uuid, PowerAction::HardStop).await;
}

// ---- disks -----------------------------------------------------------------

/// Run `qemu-io` commands on an image; `Err(output)` when one fails
/// (qemu-io exits non-zero, e.g. on a pattern mismatch of `read -P`).
/// `-U` (force share) lets reads look at the disk of a running VM.
fn qemu_io(image: &Path, read_only: bool, commands: &[String]) -> Result<(), String> {
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "qcow2"]);
    if read_only {
        cmd.args(["-r", "-U"]);
    }
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.arg(image).output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn write_pattern(image: &Path, byte: u8, off: u64, len: u64) {
    qemu_io(image, false, &[format!("write -P {byte:#x} {off} {len}")]).unwrap();
}

fn has_pattern(image: &Path, byte: u8, off: u64, len: u64) -> bool {
    qemu_io(image, true, &[format!("read -P {byte:#x} {off} {len}")]).is_ok()
}

/// `len` bytes of pseudo-random (incompressible) data in a file.
fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        data.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    data.truncate(len);
    std::fs::write(path, data).unwrap();
}

fn images_identical(a: &Path, b: &Path) -> bool {
    Command::new("qemu-img")
        .args(["compare", "-U", "-f", "qcow2", "-F", "qcow2"])
        .arg(a)
        .arg(b)
        .output()
        .unwrap()
        .status
        .success()
}

/// Assert `path` is a standalone, compressed qcow2.
fn assert_standalone_compressed(path: &Path) {
    let info = qemu_img_json(&["info", "-U", "--output=json"], path);
    assert_eq!(info["format"], "qcow2");
    assert!(
        info.get("backing-filename").is_none(),
        "backup has a backing file: {info}"
    );
    let check = qemu_img_json(&["check", "-U", "--output=json"], path);
    assert!(
        check["compressed-clusters"].as_u64().unwrap_or(0) > 0,
        "no compressed cluster: {check}"
    );
    assert_eq!(check["corruptions"].as_u64().unwrap_or(0), 0, "{check}");
}

// ---- QMP -------------------------------------------------------------------

fn qmp_socket(h: &HostContext, engine: &QemuEngine, uuid: &str) -> PathBuf {
    engine.vm_files(h, uuid).unwrap().qmp_socket
}

/// Write through the running VM's own disk backend (as the guest would),
/// then flush so that `qemu-io -U` on the file sees it.
async fn live_write(
    h: &HostContext,
    engine: &QemuEngine,
    uuid: &str,
    byte: u8,
    off: u64,
    len: u64,
) {
    for c in [
        format!("write -P {byte:#x} {off} {len}"),
        "flush".to_string(),
    ] {
        let out = hmp(
            &qmp_socket(h, engine, uuid),
            &format!("qemu-io -d {DISK_QDEV} \"{c}\""),
        )
        .await;
        assert!(out.trim().is_empty(), "qemu-io {c}: {out}");
    }
}

async fn live_flush(h: &HostContext, engine: &QemuEngine, uuid: &str) {
    let out = hmp(
        &qmp_socket(h, engine, uuid),
        &format!("qemu-io -d {DISK_QDEV} \"flush\""),
    )
    .await;
    assert!(out.trim().is_empty(), "{out}");
}

/// The guest's loop counter, read from its memory.
async fn counter(h: &HostContext, engine: &QemuEngine, uuid: &str) -> u64 {
    let out = hmp(
        &qmp_socket(h, engine, uuid),
        &format!("xp /2wx {COUNTER_ADDR:#x}"),
    )
    .await;
    // "0000000000000500: 0x0012abcd 0x00000000"
    let words: Vec<u64> = out
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("0x"))
        .map(|w| u64::from_str_radix(w, 16).unwrap())
        .collect();
    assert_eq!(words.len(), 2, "{out:?}");
    words[0] | (words[1] << 32)
}

async fn jobs(h: &HostContext, engine: &QemuEngine, uuid: &str) -> Vec<Value> {
    qmp(&qmp_socket(h, engine, uuid), "query-jobs", None)
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// Block nodes we added for backups (named `ironidc-bk-…`).
async fn backup_nodes(h: &HostContext, engine: &QemuEngine, uuid: &str) -> Vec<String> {
    qmp(
        &qmp_socket(h, engine, uuid),
        "query-named-block-nodes",
        None,
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .filter_map(|n| n["node-name"].as_str())
    .filter(|n| n.starts_with("ironidc-bk"))
    .map(str::to_string)
    .collect()
}

fn backup_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// ---- tests -----------------------------------------------------------------

/// Live snapshots hold the disk and the guest's memory: a revert puts both
/// back and the guest keeps running (or stays paused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_snapshot_reverts_disk_and_memory() {
    if !tools_installed() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = test_host();
    let h = &host.ctx;
    let engine = tcg_engine();
    engine
        .create_vm(h, &spec("snap-live", "counter.raw", 64), &NoProgress)
        .await
        .unwrap();
    let disk = engine.vm_files(h, "snap-live").unwrap().disk;
    write_pattern(&disk, 0xaa, MIB, MIB);
    start(&engine, h, "snap-live").await;

    let before = counter(h, &engine, "snap-live").await;
    let t = Instant::now();
    let info = engine.snapshot_create(h, "snap-live", "s1").await.unwrap();
    eprintln!("MEASURE live snapshot_create: {:?}", t.elapsed());
    assert_eq!(info.name, "s1");
    assert!(info.vm_state_bytes > 0, "{info:?}");
    assert!((info.created_at - unix_now()).abs() < 60, "{info:?}");
    assert_eq!(
        engine.snapshot_list(h, "snap-live").await.unwrap(),
        vec![info.clone()]
    );
    assert_eq!(
        engine.state(h, "snap-live").await.unwrap(),
        PowerState::Running
    );

    // The guest moves on: its counter grows, its disk changes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    live_write(h, &engine, "snap-live", 0xbb, MIB, MIB).await;
    assert!(has_pattern(&disk, 0xbb, MIB, MIB));
    let later = counter(h, &engine, "snap-live").await;
    assert!(later > before, "guest does not count: {before} {later}");

    let t = Instant::now();
    engine.snapshot_revert(h, "snap-live", "s1").await.unwrap();
    eprintln!("MEASURE live snapshot_revert: {:?}", t.elapsed());
    let reverted = counter(h, &engine, "snap-live").await;
    assert!(
        before <= reverted && reverted < later,
        "memory not reverted: before {before}, later {later}, after revert {reverted}"
    );
    assert_eq!(
        engine.state(h, "snap-live").await.unwrap(),
        PowerState::Running
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        counter(h, &engine, "snap-live").await > reverted,
        "guest not running after revert"
    );
    live_flush(h, &engine, "snap-live").await;
    assert!(has_pattern(&disk, 0xaa, MIB, MIB), "disk not reverted");

    // Refusals.
    let err = engine
        .snapshot_create(h, "snap-live", "s1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::SnapshotExists(n) if n == "s1"),
        "{err}"
    );
    // "1" is the id of s1: QEMU would take it for s1.
    let err = engine
        .snapshot_create(h, "snap-live", "1")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotExists(_)), "{err}");
    for bad in ["../x", "a/b", ""] {
        let err = engine
            .snapshot_revert(h, "snap-live", bad)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::SnapshotNotFound(n) if n == bad),
            "{err}"
        );
    }
    let err = engine
        .snapshot_revert(h, "snap-live", "nope")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotNotFound(_)), "{err}");
    let err = engine
        .snapshot_delete(h, "snap-live", "nope")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotNotFound(_)), "{err}");
    assert_eq!(
        engine.state(h, "snap-live").await.unwrap(),
        PowerState::Running
    );

    // A paused VM is snapshotted with its memory too, and stays paused.
    engine
        .power(h, "snap-live", PowerAction::Pause, LONG)
        .await
        .unwrap();
    let paused = engine.snapshot_create(h, "snap-live", "p1").await.unwrap();
    assert!(paused.vm_state_bytes > 0);
    engine.snapshot_revert(h, "snap-live", "p1").await.unwrap();
    assert_eq!(
        engine.state(h, "snap-live").await.unwrap(),
        PowerState::Paused
    );
    engine
        .power(h, "snap-live", PowerAction::Resume, LONG)
        .await
        .unwrap();

    // Delete: gone from QEMU's view and from the file.
    engine.snapshot_delete(h, "snap-live", "s1").await.unwrap();
    engine.snapshot_delete(h, "snap-live", "p1").await.unwrap();
    assert!(engine
        .snapshot_list(h, "snap-live")
        .await
        .unwrap()
        .is_empty());
    assert!(
        jobs(h, &engine, "snap-live").await.is_empty(),
        "jobs left behind"
    );
    let info = qemu_img_json(&["info", "-U", "--output=json"], &disk);
    assert!(info.get("snapshots").is_none(), "{info}");
    assert_eq!(
        engine.state(h, "snap-live").await.unwrap(),
        PowerState::Running
    );

    // A snapshot of 64 MiB of memory cannot be loaded into 96 MiB: the
    // guest is left stopped (its disk already reverted), with a clear error.
    engine.snapshot_create(h, "snap-live", "m64").await.unwrap();
    engine
        .update_vm(
            h,
            &VmSpec {
                mem_mb: 96,
                ..spec("snap-live", "counter.raw", 64)
            },
        )
        .await
        .unwrap();
    hard_stop(&engine, h, "snap-live").await;
    start(&engine, h, "snap-live").await;
    let err = engine
        .snapshot_revert(h, "snap-live", "m64")
        .await
        .unwrap_err();
    eprintln!("revert of a 64 MiB snapshot into 96 MiB: {err}");
    assert!(
        matches!(&err, EngineError::Qmp(m) if m.contains("left stopped")),
        "{err}"
    );
    assert_ne!(
        engine.state(h, "snap-live").await.unwrap(),
        PowerState::Running
    );
    assert!(
        jobs(h, &engine, "snap-live").await.is_empty(),
        "jobs left behind"
    );
    engine.delete_vm(h, "snap-live").await.unwrap();
}

/// Snapshots of a stopped VM are disk only (qemu-img); a disk-only snapshot
/// cannot be loaded into a live VM, a live one reverts a stopped VM's disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_snapshot_reverts_the_disk() {
    if !tools_installed() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = test_host();
    let h = &host.ctx;
    let engine = tcg_engine();
    engine
        .create_vm(h, &spec("snap-off", "loop.raw", 64), &NoProgress)
        .await
        .unwrap();
    let disk = engine.vm_files(h, "snap-off").unwrap().disk;
    write_pattern(&disk, 0xaa, 2 * MIB, MIB);

    let d1 = engine.snapshot_create(h, "snap-off", "d1").await.unwrap();
    assert_eq!((d1.name.as_str(), d1.vm_state_bytes), ("d1", 0));
    write_pattern(&disk, 0xbb, 2 * MIB, MIB);
    assert!(has_pattern(&disk, 0xbb, 2 * MIB, MIB));
    engine.snapshot_revert(h, "snap-off", "d1").await.unwrap();
    assert!(has_pattern(&disk, 0xaa, 2 * MIB, MIB), "disk not reverted");
    let err = engine
        .snapshot_create(h, "snap-off", "d1")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotExists(_)), "{err}");
    engine.snapshot_create(h, "snap-off", "d2").await.unwrap();
    engine.snapshot_delete(h, "snap-off", "d1").await.unwrap();
    let names: Vec<String> = engine
        .snapshot_list(h, "snap-off")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["d2"]);
    let err = engine
        .snapshot_revert(h, "snap-off", "d1")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotNotFound(_)), "{err}");
    let err = engine
        .snapshot_delete(h, "snap-off", "d1")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotNotFound(_)), "{err}");

    // Live: the disk-only d2 cannot be loaded into the running guest.
    start(&engine, h, "snap-off").await;
    let err = engine
        .snapshot_revert(h, "snap-off", "d2")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "running",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        engine.state(h, "snap-off").await.unwrap(),
        PowerState::Running
    );
    // A live snapshot reverted while stopped: the disk only.
    let l1 = engine.snapshot_create(h, "snap-off", "l1").await.unwrap();
    assert!(l1.vm_state_bytes > 0);
    live_write(h, &engine, "snap-off", 0xcc, 2 * MIB, MIB).await;
    hard_stop(&engine, h, "snap-off").await;
    assert!(has_pattern(&disk, 0xcc, 2 * MIB, MIB));
    engine.snapshot_revert(h, "snap-off", "l1").await.unwrap();
    assert!(has_pattern(&disk, 0xaa, 2 * MIB, MIB));
    assert_eq!(
        engine.state(h, "snap-off").await.unwrap(),
        PowerState::Stopped
    );
    // The reverted disk still boots.
    start(&engine, h, "snap-off").await;
    hard_stop(&engine, h, "snap-off").await;
}

/// Backups of a running and of a stopped VM, listing, restore, delete, and
/// the refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_list_restore_delete() {
    if !tools_installed() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = test_host();
    let h = &host.ctx;
    let engine = tcg_engine();
    engine
        .create_vm(h, &spec("bk-a", "loop.raw", 64), &NoProgress)
        .await
        .unwrap();
    engine
        .create_vm(h, &spec("bk-b", "loop.raw", 64), &NoProgress)
        .await
        .unwrap();
    assert!(engine.backup_list(h, "bk-a").await.unwrap().is_empty());
    let disk = engine.vm_files(h, "bk-a").unwrap().disk;
    write_pattern(&disk, 0xaa, MIB, 8 * MIB);
    let folder = h.backups_dir.join("bk-a");

    // Running: the guest keeps running.
    start(&engine, h, "bk-a").await;
    let progress = Recorder::default();
    let t = Instant::now();
    let b1 = engine
        .backup_create(h, "bk-a", "b1", &progress)
        .await
        .unwrap();
    eprintln!(
        "MEASURE live backup of 64 MiB (9 MiB written): {:?}, file {} bytes",
        t.elapsed(),
        b1.file_bytes
    );
    progress.assert_complete("backup");
    assert_eq!(engine.state(h, "bk-a").await.unwrap(), PowerState::Running);
    let b1_file = folder.join("b1.qcow2");
    assert_eq!(backup_files(&folder), ["b1.qcow2"]);
    assert_eq!((b1.name.as_str(), b1.disk_bytes), ("b1", 64 * MIB));
    assert!(b1.file_bytes > 0 && b1.file_bytes < 9 * MIB, "{b1:?}");
    assert_standalone_compressed(&b1_file);
    assert!(
        images_identical(&disk, &b1_file),
        "live backup differs from the disk"
    );
    assert!(jobs(h, &engine, "bk-a").await.is_empty(), "job left behind");
    assert!(
        backup_nodes(h, &engine, "bk-a").await.is_empty(),
        "target node left behind"
    );

    let err = engine
        .backup_create(h, "bk-a", "b1", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::BackupExists(n) if n == "b1"),
        "{err}"
    );
    let err = engine
        .backup_create(h, "bk-a", "../b1", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::BackupNotFound(n) if n == "../b1"),
        "{err}"
    );
    let listed = engine.backup_list(h, "bk-a").await.unwrap();
    assert_eq!(listed, vec![b1.clone()]);
    let err = engine
        .backup_restore(h, "bk-a", "b1", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "running",
                action: "backup restore"
            }
        ),
        "{err}"
    );

    // Stopped: overwrite, restore, the pattern is back.
    hard_stop(&engine, h, "bk-a").await;
    write_pattern(&disk, 0xbb, MIB, 8 * MIB);
    assert!(!images_identical(&disk, &b1_file));
    let progress = Recorder::default();
    engine
        .backup_restore(h, "bk-a", "b1", &progress)
        .await
        .unwrap();
    progress.assert_complete("restore");
    assert!(
        has_pattern(&disk, 0xaa, MIB, 8 * MIB),
        "pattern not restored"
    );
    assert!(images_identical(&b1_file, &disk));
    let restored = qemu_img_json(&["info", "--output=json"], &disk);
    assert!(restored.get("backing-filename").is_none(), "{restored}");
    assert!(!engine
        .vm_files(h, "bk-a")
        .unwrap()
        .dir
        .join("disk.qcow2.restore")
        .exists());
    start(&engine, h, "bk-a").await; // the restored disk boots
    hard_stop(&engine, h, "bk-a").await;

    // A backup of the stopped VM (qemu-img), listed newest first.
    std::fs::File::options()
        .write(true)
        .open(&b1_file)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    write_pattern(&disk, 0xcc, 20 * MIB, MIB);
    let progress = Recorder::default();
    let b2 = engine
        .backup_create(h, "bk-a", "b2", &progress)
        .await
        .unwrap();
    progress.assert_complete("backup");
    let b2_file = folder.join("b2.qcow2");
    assert_standalone_compressed(&b2_file);
    assert!(images_identical(&disk, &b2_file));
    let names: Vec<String> = engine
        .backup_list(h, "bk-a")
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["b2", "b1"]);
    assert_eq!(
        b2.file_bytes,
        std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&b2_file).unwrap()) * 512
    );

    // Another VM sees none of them.
    assert!(engine.backup_list(h, "bk-b").await.unwrap().is_empty());
    let err = engine
        .backup_restore(h, "bk-b", "b1", &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::BackupNotFound(_)), "{err}");
    let err = engine.backup_delete(h, "bk-b", "b1").await.unwrap_err();
    assert!(matches!(err, EngineError::BackupNotFound(_)), "{err}");

    engine.backup_delete(h, "bk-a", "b2").await.unwrap();
    let err = engine.backup_delete(h, "bk-a", "b2").await.unwrap_err();
    assert!(matches!(err, EngineError::BackupNotFound(_)), "{err}");
    let err = engine
        .backup_restore(h, "bk-a", "b2", &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::BackupNotFound(_)), "{err}");
    assert_eq!(backup_files(&folder), ["b1.qcow2"]);

    // A backup bigger than the VM's definition would leave a VM that cannot
    // start: refused, the disk untouched.
    engine
        .reinstall(h, &spec("bk-a", "loop.raw", 32), &NoProgress)
        .await
        .unwrap();
    let err = engine
        .backup_restore(h, "bk-a", "b1", &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::DiskShrink {
                current_mb: 64,
                requested_mb: 32
            }
        ),
        "{err}"
    );
    assert_eq!(
        qemu_img_json(&["info", "--output=json"], &disk)["virtual-size"],
        32 * MIB
    );

    // A backup path that cannot be written: an error, and nothing left.
    let blocked = HostContext {
        backups_dir: host.tmp.path().join("not-a-dir"),
        ..h.clone()
    };
    std::fs::write(&blocked.backups_dir, b"file").unwrap();
    let err = engine
        .backup_create(&blocked, "bk-a", "b3", &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Io { .. }), "{err}");
    assert_eq!(std::fs::read(&blocked.backups_dir).unwrap(), b"file");
}

/// The live backup is the disk as of the job start although the guest
/// writes during the copy; a job that fails (disk full) or whose caller goes
/// away leaves no file, no job and no node behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_backup_point_in_time_failure_and_cancel() {
    if !tools_installed() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = test_host();
    let h = host.ctx.clone();
    let engine = Arc::new(tcg_engine());
    engine
        .create_vm(&h, &spec("bk-pit", "loop.raw", 256), &NoProgress)
        .await
        .unwrap();
    let disk = engine.vm_files(&h, "bk-pit").unwrap().disk;
    // 192 MiB of incompressible data, so that the copy takes a while, and a
    // pattern at the end, copied last.
    let random = host.tmp.path().join("random.bin");
    random_file(&random, 16 * MIB as usize, 7);
    let writes: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "write -s {} {} {}",
                random.display(),
                (4 + i * 16) * MIB,
                16 * MIB
            )
        })
        .collect();
    qemu_io(&disk, false, &writes).unwrap();
    write_pattern(&disk, 0xaa, 250 * MIB, MIB);
    start(&engine, &h, "bk-pit").await;
    let folder = h.backups_dir.join("bk-pit");

    // Point in time: overwrite the pattern while the job runs.
    let progress = Arc::new(Recorder::default());
    let task = {
        let (engine, h, progress) = (engine.clone(), h.clone(), progress.clone());
        tokio::spawn(async move { engine.backup_create(&h, "bk-pit", "pit", &*progress).await })
    };
    wait_for_job_progress(&progress).await;
    live_write(&h, &engine, "bk-pit", 0xcc, 250 * MIB, MIB).await;
    let running = jobs(&h, &engine, "bk-pit").await;
    assert!(
        running
            .iter()
            .any(|j| j["type"] == "backup" && j["status"] == "running"),
        "the backup ended before the guest wrote: the test proves nothing ({running:?})"
    );
    let t = Instant::now();
    let pit = task.await.unwrap().unwrap();
    eprintln!(
        "MEASURE live backup of 192 MiB random: rest of the job {:?}, file {} bytes",
        t.elapsed(),
        pit.file_bytes
    );
    progress.assert_complete("backup");
    let pit_file = folder.join("pit.qcow2");
    assert!(
        has_pattern(&pit_file, 0xaa, 250 * MIB, MIB),
        "backup holds the write made during the job"
    );
    assert!(
        has_pattern(&disk, 0xcc, 250 * MIB, MIB),
        "the guest's write is lost"
    );
    assert_eq!(
        engine.state(&h, "bk-pit").await.unwrap(),
        PowerState::Running
    );
    // Everything else is the disk as it was: put the pattern back and compare.
    live_write(&h, &engine, "bk-pit", 0xaa, 250 * MIB, MIB).await;
    assert!(
        images_identical(&disk, &pit_file),
        "backup differs from the disk"
    );
    assert_standalone_compressed(&pit_file);

    // Cancelled: the caller's future is dropped mid-copy.
    let progress = Arc::new(Recorder::default());
    let task = {
        let (engine, h, progress) = (engine.clone(), h.clone(), progress.clone());
        tokio::spawn(async move { engine.backup_create(&h, "bk-pit", "cut", &*progress).await })
    };
    wait_for_job_progress(&progress).await;
    task.abort();
    assert!(
        task.await.unwrap_err().is_cancelled(),
        "backup finished before the abort"
    );
    let t = Instant::now();
    loop {
        let files = backup_files(&folder);
        let left = (
            files.clone(),
            jobs(&h, &engine, "bk-pit").await,
            backup_nodes(&h, &engine, "bk-pit").await,
        );
        if left.0 == ["pit.qcow2"] && left.1.is_empty() && left.2.is_empty() {
            break;
        }
        assert!(t.elapsed() < LONG, "left behind after cancel: {left:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("MEASURE cleanup after a dropped backup: {:?}", t.elapsed());
    // The VM lock is free again and the name usable.
    assert_eq!(
        engine.state(&h, "bk-pit").await.unwrap(),
        PowerState::Running
    );

    // Failed: the backup filesystem fills up mid-copy.
    match SmallTmpfs::mount(&host.tmp.path().join("small"), 16 * MIB) {
        Some(fs) => {
            let small = HostContext {
                backups_dir: fs.0.clone(),
                ..h.clone()
            };
            let err = engine
                .backup_create(&small, "bk-pit", "full", &NoProgress)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, EngineError::Qmp(m) if m.contains("space")),
                "{err}"
            );
            assert!(
                backup_files(&fs.0.join("bk-pit")).is_empty(),
                "{:?}",
                backup_files(&fs.0.join("bk-pit"))
            );
            assert!(jobs(&h, &engine, "bk-pit").await.is_empty());
            assert!(backup_nodes(&h, &engine, "bk-pit").await.is_empty());
        }
        None => eprintln!("SKIPPED disk-full case: cannot mount a tmpfs here (needs root)"),
    }
    assert_eq!(
        engine.state(&h, "bk-pit").await.unwrap(),
        PowerState::Running
    );
    hard_stop(&engine, &h, "bk-pit").await;
}

/// Wait until the backup reported progress from a running job (past the
/// initial 0 % report).
async fn wait_for_job_progress(progress: &Recorder) {
    let t = Instant::now();
    while progress.percents("backup").len() < 2 {
        assert!(t.elapsed() < LONG, "no job progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A size-limited tmpfs, unmounted on drop.
struct SmallTmpfs(PathBuf);
impl SmallTmpfs {
    fn mount(at: &Path, bytes: u64) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| Self(at.to_path_buf()))
    }
}
impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Reinstall: refused while running; stopped, a new linked clone of the new
/// image replaces the disk (data and snapshots gone), the spec is stored;
/// a failed reinstall leaves the old disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinstall_replaces_the_disk() {
    if !tools_installed() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = test_host();
    let h = &host.ctx;
    let engine = tcg_engine();
    engine
        .create_vm(h, &spec("re", "loop.raw", 64), &NoProgress)
        .await
        .unwrap();
    let files = engine.vm_files(h, "re").unwrap();
    write_pattern(&files.disk, 0xaa, MIB, MIB);
    engine.snapshot_create(h, "re", "old").await.unwrap();

    let new_spec = VmSpec {
        mem_mb: 96,
        ..spec("re", "counter.raw", 96)
    };
    start(&engine, h, "re").await;
    let err = engine
        .reinstall(h, &new_spec, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "running",
                action: "reinstall"
            }
        ),
        "{err}"
    );
    hard_stop(&engine, h, "re").await;

    // Errors leave the old disk.
    let err = engine
        .reinstall(h, &spec("re", "missing.raw", 96), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ImageNotFound(_)), "{err}");
    std::fs::File::create(h.images_dir.join("big.raw"))
        .unwrap()
        .set_len(128 * MIB)
        .unwrap();
    let err = engine
        .reinstall(h, &spec("re", "big.raw", 96), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::DiskShrink { .. }), "{err}");
    assert!(has_pattern(&files.disk, 0xaa, MIB, MIB));
    assert_eq!(engine.snapshot_list(h, "re").await.unwrap().len(), 1);
    assert_eq!(
        std::fs::read_dir(&files.dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains("reinstall"))
            .count(),
        0
    );

    let progress = Recorder::default();
    engine.reinstall(h, &new_spec, &progress).await.unwrap();
    assert_eq!(progress.0.lock().unwrap().last().map(|p| p.1), Some(100));
    assert!(
        !has_pattern(&files.disk, 0xaa, MIB, MIB),
        "old data still there"
    );
    assert!(has_pattern(&files.disk, 0, MIB, MIB));
    let info = qemu_img_json(&["info", "--output=json"], &files.disk);
    let base = std::fs::canonicalize(h.images_dir.join("counter.raw")).unwrap();
    assert_eq!(info["full-backing-filename"], base.to_str().unwrap());
    assert_eq!(info["virtual-size"], 96 * MIB);
    assert!(engine.snapshot_list(h, "re").await.unwrap().is_empty());
    let stored: VmSpec =
        serde_json::from_slice(&std::fs::read(&files.definition).unwrap()).unwrap();
    assert_eq!(stored, new_spec);
    // It boots the new image: the counting guest runs.
    start(&engine, h, "re").await;
    let c1 = counter(h, &engine, "re").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(counter(h, &engine, "re").await > c1);
    hard_stop(&engine, h, "re").await;
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
