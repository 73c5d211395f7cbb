//! VM counters and host details of the QEMU engine against a real QEMU
//! (TCG) guest and this machine's /proc and /sys.
//!
//! Needs `qemu-system-x86_64` and `qemu-img`; skipped with a message when
//! they are missing, except in CI (env `CI` set), where that is a failure.
//! One guest at a time; a guest left by a failing test is killed when its
//! fixture drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironidc_core::engine::{
    Engine, EngineError, HostContext, NicSpec, NoProgress, PowerAction, VmSpec,
};
use ironidc_engine::qemu::qmp::QmpClient;
use ironidc_engine::qemu::{Accel, QemuEngine, QemuOptions};

const MIB: u64 = 1024 * 1024;
const BOOT_MESSAGE: &str = "IRONIDC-BOOT-OK";
const LONG: Duration = Duration::from_secs(30);

fn qemu_available() -> bool {
    let ok = |p: &str| {
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ok("qemu-system-x86_64") && ok("qemu-img") {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("qemu-system-x86_64 and qemu-img are required in CI");
    }
    eprintln!("SKIPPED: qemu-system-x86_64 or qemu-img is not installed (install qemu-system-x86 qemu-utils)");
    false
}

fn tcg_engine() -> QemuEngine {
    QemuEngine::new(QemuOptions {
        accel: Some(Accel::Tcg),
        ..QemuOptions::default()
    })
}

/// A boot sector that prints `BOOT_MESSAGE` on COM1 and loops forever
/// (the loop keeps the vCPU busy, so CPU time grows).
fn loop_sector() -> [u8; 512] {
    const PROLOGUE_LEN: usize = 20;
    let tail = [0xEB, 0xFE]; // done: jmp $
    let msg_addr = (0x7C00 + PROLOGUE_LEN + tail.len()) as u16;
    let mut code = vec![
        0xFA,
        0xFC,
        0x31,
        0xC0,
        0x8E,
        0xD8, // cli; cld; xor ax,ax; mov ds,ax
        0xBE,
        msg_addr as u8,
        (msg_addr >> 8) as u8, // mov si,msg
        0xAC,
        0x84,
        0xC0,
        0x74,
        0x06, // next: lodsb; test al,al; jz done
        0xBA,
        0xF8,
        0x03,
        0xEE,
        0xEB,
        0xF5, // mov dx,0x3f8; out dx,al; jmp next
    ];
    assert_eq!(code.len(), PROLOGUE_LEN);
    code.extend_from_slice(&tail);
    code.extend_from_slice(format!("{BOOT_MESSAGE}\r\n\0").as_bytes());
    let mut s = [0u8; 512];
    s[..code.len()].copy_from_slice(&code);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

fn write_boot_disk(path: &Path, size: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut f, &loop_sector()).unwrap();
    f.set_len(size.max(512)).unwrap();
}

/// A host in a temporary directory. Dropping it SIGKILLs every QEMU still
/// running from its VM directories.
struct TestHost {
    _tmp: tempfile::TempDir,
    ctx: HostContext,
}

impl TestHost {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = HostContext {
            hs_name: "test-host".into(),
            vms_dir: tmp.path().join("vms"),
            images_dir: tmp.path().join("images"),
            backups_dir: tmp.path().join("backups"),
            isos_dir: tmp.path().join("isos"),
        };
        std::fs::create_dir_all(&ctx.images_dir).unwrap();
        Self { _tmp: tmp, ctx }
    }
    fn image(&self, name: &str) -> PathBuf {
        self.ctx.images_dir.join(name)
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.ctx.vms_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path().join("qemu.pid")) else {
                continue;
            };
            let Ok(pid) = text.trim().parse::<i32>() else {
                continue;
            };
            let uuid = entry.file_name().to_string_lossy().into_owned();
            let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .any(|a| a == format!("guest={uuid}").as_bytes())
            });
            if ours {
                eprintln!("cleanup: killing leftover qemu {pid} of {uuid}");
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn spec(uuid: &str, image: &str, hdd_mb: u64) -> VmSpec {
    VmSpec {
        uuid: uuid.into(),
        cpu_num: 1,
        mem_mb: 128,
        hdd_mb,
        os_image: image.into(),
        // User-mode networking: no tap, so the NIC counts nothing.
        nics: vec![NicSpec {
            name: "ethernet0".into(),
            mac: "52:54:00:12:34:56".into(),
            bridge: None,
        }],
        iso: None,
    }
}

async fn wait_for_boot(serial: &Path) {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if log.contains(BOOT_MESSAGE) {
            return;
        }
        assert!(
            started.elapsed() < LONG,
            "guest did not boot within {LONG:?}; log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    wait_for_boot(&files.serial_log).await;

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
