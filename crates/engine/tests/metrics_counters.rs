//! VM counters and host details of the QEMU engine against a real QEMU
//! (TCG) guest and this machine's /proc and /sys.
//!
//! Needs `qemu-system-x86_64` and `qemu-img`; skipped with a message when
//! they are missing, except in CI (env `CI` set), where that is a failure.
//! One guest at a time; a guest left by a failing test is killed when its
//! fixture drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use ironidc_core::engine::{Engine, EngineError, NoProgress, PowerAction};
use ironidc_engine::qemu::qmp::QmpClient;
use support::engine::tcg_engine;
use support::guest::{wait_for_boots, write_boot_disk};
use support::host::{spec, TestHost};
use support::tools::qemu_available;
use support::{LONG, MIB};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_of_a_running_vm() {
    if !qemu_available() {
        return;
    }
    let host = TestHost::new();
    let h = &host.ctx;
    write_boot_disk(&host.image("loop.raw"), MIB);
    let engine = tcg_engine();
    engine
        .create_vm(h, &spec("vm-c", "loop.raw", 64), &NoProgress)
        .await
        .unwrap();

    // Stopped: no process, no counters.
    let err = engine.counters(h, "vm-c").await.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "stopped",
                ..
            }
        ),
        "{err}"
    );

    engine
        .power(h, "vm-c", PowerAction::Start, LONG)
        .await
        .unwrap();
    let files = engine.vm_files(h, "vm-c").unwrap();
    wait_for_boots(&files.serial_log, 1, LONG).await;

    let first = engine.counters(h, "vm-c").await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let second = engine.counters(h, "vm-c").await.unwrap();
    eprintln!("{first:?}\n{second:?}");
    // The guest spins in a loop: the vCPU thread burns CPU all the time.
    assert!(first.cpu_time_ms > 0, "{first:?}");
    assert!(
        second.cpu_time_ms >= first.cpu_time_ms + 300,
        "CPU time over 1 s of a spinning guest: {first:?} -> {second:?}"
    );
    // SeaBIOS read the boot sector from the system disk.
    assert!(first.disk_read_bytes >= 512, "{first:?}");
    assert!(second.disk_read_bytes >= first.disk_read_bytes);
    // User-mode NIC: no tap, nothing counted.
    assert_eq!((second.net_rx_bytes, second.net_tx_bytes), (0, 0));

    // A monitor held by someone else: disk figures are 0, the rest is there.
    let holder = QmpClient::connect(&files.qmp_socket, Duration::from_secs(5))
        .await
        .unwrap();
    let busy = engine.counters(h, "vm-c").await.unwrap();
    assert_eq!((busy.disk_read_bytes, busy.disk_write_bytes), (0, 0));
    assert!(busy.cpu_time_ms >= second.cpu_time_ms, "{busy:?}");
    drop(holder);

    engine
        .power(h, "vm-c", PowerAction::HardStop, LONG)
        .await
        .unwrap();
    let err = engine.counters(h, "vm-c").await.unwrap_err();
    assert!(matches!(err, EngineError::InvalidState { .. }), "{err}");
}

#[tokio::test]
async fn host_details_of_this_machine() {
    let host = TestHost::new();
    // images_dir exists (TestHost made it); the others do not.
    let d = tcg_engine().host_details(&host.ctx).await.unwrap();
    eprintln!("{d:?}");
    assert!(d.cpu_count >= 1);
    assert!(!d.cpu_model.is_empty());
    assert!(d.load_1.is_some() && d.load_5.is_some() && d.load_15.is_some());
    assert!(d.uptime_secs.is_some_and(|u| u > 0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(d.kernel.as_deref(), Some(kernel.trim()));

    let by_role = |role: &str| d.storage.iter().find(|s| s.role == role).unwrap();
    assert_eq!(d.storage.len(), 4);
    let images = by_role("images");
    assert_eq!(images.path, host.ctx.images_dir.display().to_string());
    let (total, used) = (images.total_mb.unwrap(), images.used_mb.unwrap());
    assert!(total > 0 && used <= total, "{images:?}");
    for missing in ["vms", "backups", "isos"] {
        let s = by_role(missing);
        assert_eq!((s.total_mb, s.used_mb), (None, None), "{s:?}");
    }
    for (name, celsius) in &d.temperatures {
        assert!(!name.is_empty() && (-60.0..=200.0).contains(celsius));
    }
}
