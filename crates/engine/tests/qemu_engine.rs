//! The QEMU engine against real QEMU (TCG): lifecycle, linked clones, the
//! process outliving the engine, the KVM probe.
//!
//! Needs `qemu-system-x86_64` and `qemu-img`; skipped with a message when
//! they are missing, except in CI (env `CI` set), where that is a failure.
//! At most two QEMU processes run at once (one VM, one probe), and every VM
//! left running by a failing test is killed when its fixture drops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ironidc_core::engine::{
    Engine, EngineError, HostContext, NoProgress, PowerAction, PowerState, UpdateOutcome,
};
use ironidc_engine::qemu::accel::{probe_kvm, PROBE_TIMEOUT};
use ironidc_engine::qemu::qmp::QmpClient;
use ironidc_engine::qemu::Accel;
use support::engine::{qemu_img_info, tcg_engine, Recorder, ONE_VM_AT_A_TIME};
use support::guest::{sector, wait_for_boots, write_boot_disk, write_disk};
use support::host::{is_qemu_of, spec, TestHost};
use support::tools::qemu_available;
use support::{LONG, MIB};

/// The arguments of the QEMU whose pid file is `pidfile`.
fn running_args(pidfile: &Path) -> Vec<Vec<u8>> {
    let pid: i32 = std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Like `support::loop_sector`, but it honours the ACPI power button as an
/// OS would: it enables the power-button event in the PIIX4 PM block
/// (SeaBIOS puts it at I/O 0x600), polls its status bit and then enters S5
/// (soft off).
///
/// ```text
/// done: mov dx,0x602; mov ax,0x100; out dx,ax      ; PM1_EN.PWRBTN_EN
/// wait: mov dx,0x600; in ax,dx; test ah,1; jz wait ; PM1_STS.PWRBTN_STS
///       mov dx,0x604; mov ax,0x2000; out dx,ax     ; PM1_CNT: SLP_EN, S5
///       hlt; jmp $
/// ```
fn acpi_sector() -> [u8; 512] {
    sector(&[
        0xBA, 0x02, 0x06, 0xB8, 0x00, 0x01, 0xEF, // enable the power button event
        0xBA, 0x00, 0x06, 0xED, 0xF6, 0xC4, 0x01, 0x74, 0xF7, // poll its status
        0xBA, 0x04, 0x06, 0xB8, 0x00, 0x20, 0xEF, // soft off
        0xF4, 0xEB, 0xFE,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_vm_lifecycle() {
    if !qemu_available() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = TestHost::new();
    let h = &host.ctx;
    write_boot_disk(&host.image("loop.raw"), MIB);
    let engine = tcg_engine();

    let info = engine.info().await;
    assert!(info.enabled, "{:?}", info.messages);
    assert_eq!(info.key, "qemu");
    assert!(
        info.messages.iter().any(|m| m.contains("tcg forced")),
        "{:?}",
        info.messages
    );

    // Refusals leave nothing behind.
    let err = engine
        .create_vm(h, &spec("vm-a", "missing.raw", 64), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::ImageNotFound(_)), "{err}");
    std::fs::File::create(host.image("big.raw"))
        .unwrap()
        .set_len(128 * MIB)
        .unwrap();
    let err = engine
        .create_vm(h, &spec("vm-a", "big.raw", 64), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::DiskShrink {
                current_mb: 128,
                requested_mb: 64
            }
        ),
        "{err}"
    );
    assert!(
        !h.vms_dir.join("vm-a").exists(),
        "rollback left the directory"
    );
    let long_host = HostContext {
        vms_dir: h.vms_dir.join("x".repeat(100)),
        ..h.clone()
    };
    let err = engine
        .create_vm(&long_host, &spec("vm-a", "loop.raw", 64), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::SocketPathTooLong(_)), "{err}");

    // Create: a linked clone of the base image.
    let progress = Recorder::default();
    engine
        .create_vm(h, &spec("vm-a", "loop.raw", 64), &progress)
        .await
        .unwrap();
    assert_eq!(progress.0.lock().unwrap().last().map(|p| p.1), Some(100));
    let err = engine
        .create_vm(h, &spec("vm-a", "loop.raw", 64), &NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::VmExists(_)), "{err}");
    let files = engine.vm_files(h, "vm-a").unwrap();
    let disk = qemu_img_info(&files.disk);
    let base = std::fs::canonicalize(host.image("loop.raw")).unwrap();
    assert_eq!(disk["full-backing-filename"], base.to_str().unwrap());
    assert_eq!(disk["backing-filename-format"], "raw");
    assert_eq!(disk["virtual-size"], 64 * MIB);

    // Stopped: state, sample, update applied now.
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Stopped);
    let s = engine.sample(h, "vm-a").await.unwrap();
    assert_eq!(
        (
            s.ac_status.as_str(),
            s.cpu_usage,
            s.mem_usage,
            s.mem_total,
            s.hdd_total
        ),
        ("STOPPED", 0.0, 0, 128, 64)
    );
    let mut bigger = spec("vm-a", "loop.raw", 96);
    assert_eq!(
        engine.update_vm(h, &bigger).await.unwrap(),
        UpdateOutcome::Applied
    );
    assert_eq!(qemu_img_info(&files.disk)["virtual-size"], 96 * MIB);
    let err = engine
        .update_vm(h, &spec("vm-a", "loop.raw", 32))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::DiskShrink {
                current_mb: 96,
                requested_mb: 32
            }
        ),
        "{err}"
    );
    for action in [
        PowerAction::Stop,
        PowerAction::HardStop,
        PowerAction::Pause,
        PowerAction::Resume,
        PowerAction::HardReset,
    ] {
        let err = engine.power(h, "vm-a", action, LONG).await.unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::InvalidState {
                    state: "stopped",
                    ..
                }
            ),
            "{action:?}: {err}"
        );
    }

    // Start: QEMU daemonizes; the guest boots the linked clone from virtio.
    let t = Instant::now();
    engine
        .power(h, "vm-a", PowerAction::Start, LONG)
        .await
        .unwrap();
    let launch = t.elapsed();
    let boot = wait_for_boots(&files.serial_log, 1, LONG).await;
    eprintln!("MEASURE launch (power start returned) {launch:?}; boot sector on serial after a further {boot:?}");
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Running);
    // Detached from us: not our child, no pipe of ours on its stdio.
    let pid: i32 = std::fs::read_to_string(&files.pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim();
    assert_ne!(
        ppid,
        std::process::id().to_string(),
        "qemu is a child of the controller"
    );
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
        assert_eq!(target, Path::new("/dev/null"), "fd {fd} of qemu");
    }
    let err = engine
        .power(h, "vm-a", PowerAction::Start, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "running",
                action: "start"
            }
        ),
        "{err}"
    );

    // The QMP client against real QEMU.
    let mut qmp = QmpClient::connect(&files.qmp_socket, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(qmp.greeting()["QMP"]["version"]["qemu"]["major"], 7);
    let version = qmp.execute("query-version", None).await.unwrap();
    assert_eq!(version["qemu"]["major"], 7);
    let err = qmp.execute("no-such-command", None).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Qmp(m) if m.contains("CommandNotFound")),
        "{err}"
    );
    drop(qmp);
    assert!(files.vnc_socket.exists() && files.qga_socket.exists());

    let s = engine.sample(h, "vm-a").await.unwrap();
    assert_eq!(s.ac_status, "STARTED");
    assert!(s.mem_usage > 0 && s.cpu_model.contains("tcg"), "{s:?}");
    assert!((0.0..=100.0).contains(&s.cpu_usage));

    // Pause / resume, and their invalid repetitions.
    engine
        .power(h, "vm-a", PowerAction::Pause, LONG)
        .await
        .unwrap();
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Paused);
    let err = engine
        .power(h, "vm-a", PowerAction::Pause, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "paused",
                action: "pause"
            }
        ),
        "{err}"
    );
    engine
        .power(h, "vm-a", PowerAction::Resume, LONG)
        .await
        .unwrap();
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Running);
    let err = engine
        .power(h, "vm-a", PowerAction::Resume, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "running",
                action: "resume"
            }
        ),
        "{err}"
    );

    // hard_reset: the boot sector runs again in the same process.
    let pid_before = std::fs::read_to_string(&files.pidfile).unwrap();
    engine
        .power(h, "vm-a", PowerAction::HardReset, LONG)
        .await
        .unwrap();
    wait_for_boots(&files.serial_log, 2, LONG).await;
    assert_eq!(std::fs::read_to_string(&files.pidfile).unwrap(), pid_before);

    // A change while running waits for the next start.
    bigger.mem_mb = 192;
    assert_eq!(
        engine.update_vm(h, &bigger).await.unwrap(),
        UpdateOutcome::PendingRestart
    );

    // The loop sector ignores ACPI: stop and graceful reset time out.
    let t = Instant::now();
    let err = engine
        .power(h, "vm-a", PowerAction::Stop, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::StopTimeout(2)), "{err}");
    assert!(t.elapsed() >= Duration::from_secs(2) && t.elapsed() < Duration::from_secs(10));
    let err = engine
        .power(h, "vm-a", PowerAction::Reset, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::StopTimeout(1)), "{err}");
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Running);

    // The VM outlives the engine (think: controller restart).
    drop(engine);
    let engine = tcg_engine();
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Running);
    let scanned = engine.scan(h).await.unwrap();
    assert_eq!(scanned.len(), 1);
    assert_eq!(
        (scanned[0].spec.uuid.as_str(), scanned[0].state),
        ("vm-a", PowerState::Running)
    );
    assert_eq!(
        scanned[0].spec.mem_mb, 192,
        "scan shows the stored (next-start) definition"
    );
    engine
        .power(h, "vm-a", PowerAction::HardStop, LONG)
        .await
        .unwrap();
    assert_eq!(engine.state(h, "vm-a").await.unwrap(), PowerState::Stopped);
    let pid: i32 = pid_before.trim().parse().unwrap();
    assert!(!is_qemu_of(pid, "vm-a"), "qemu still alive after hard_stop");
    let err = engine
        .power(h, "vm-a", PowerAction::HardStop, LONG)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidState {
                state: "stopped",
                action: "hard_stop"
            }
        ),
        "{err}"
    );

    // The next start applies the pending definition.
    engine
        .power(h, "vm-a", PowerAction::Start, LONG)
        .await
        .unwrap();
    assert!(
        running_args(&files.pidfile).iter().any(|a| a == b"192M"),
        "new memory size not applied"
    );

    // Delete a running VM: process and directory gone.
    engine.delete_vm(h, "vm-a").await.unwrap();
    assert!(!is_qemu_of(pid, "vm-a"));
    assert!(!files.dir.exists());
    assert!(matches!(
        engine.delete_vm(h, "vm-a").await.unwrap_err(),
        EngineError::VmNotFound(_)
    ));
    assert!(matches!(
        engine.state(h, "vm-a").await.unwrap_err(),
        EngineError::VmNotFound(_)
    ));
    assert!(engine.scan(h).await.unwrap().is_empty());
}

/// The happy paths of the soft actions, with a guest that honours the ACPI
/// power button: stop, graceful reset (a new process), stop from paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qemu_soft_stop_and_reset_with_an_acpi_guest() {
    if !qemu_available() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = TestHost::new();
    let h = &host.ctx;
    write_disk(&host.image("acpi.raw"), &acpi_sector(), MIB);
    let engine = tcg_engine();
    engine
        .create_vm(h, &spec("vm-b", "acpi.raw", 16), &NoProgress)
        .await
        .unwrap();
    let files = engine.vm_files(h, "vm-b").unwrap();
    let pid = || {
        std::fs::read_to_string(&files.pidfile)
            .unwrap()
            .trim()
            .parse::<i32>()
            .unwrap()
    };

    engine
        .power(h, "vm-b", PowerAction::Start, LONG)
        .await
        .unwrap();
    wait_for_boots(&files.serial_log, 1, LONG).await;
    let t = Instant::now();
    engine
        .power(h, "vm-b", PowerAction::Stop, LONG)
        .await
        .unwrap();
    eprintln!("MEASURE soft stop of an ACPI guest: {:?}", t.elapsed());
    assert_eq!(engine.state(h, "vm-b").await.unwrap(), PowerState::Stopped);

    // Graceful reset: the guest powers off, a new QEMU starts.
    engine
        .power(h, "vm-b", PowerAction::Start, LONG)
        .await
        .unwrap();
    wait_for_boots(&files.serial_log, 1, LONG).await;
    let first = pid();
    let t = Instant::now();
    engine
        .power(h, "vm-b", PowerAction::Reset, LONG)
        .await
        .unwrap();
    eprintln!(
        "MEASURE graceful reset (ACPI off + start): {:?}",
        t.elapsed()
    );
    assert_eq!(engine.state(h, "vm-b").await.unwrap(), PowerState::Running);
    assert_ne!(pid(), first, "reset should restart the process");
    assert!(!is_qemu_of(first, "vm-b"));
    wait_for_boots(&files.serial_log, 1, LONG).await;

    // Stop from paused: resumed so the guest can see the button.
    engine
        .power(h, "vm-b", PowerAction::Pause, LONG)
        .await
        .unwrap();
    engine
        .power(h, "vm-b", PowerAction::Stop, LONG)
        .await
        .unwrap();
    assert_eq!(engine.state(h, "vm-b").await.unwrap(), PowerState::Stopped);
    engine.delete_vm(h, "vm-b").await.unwrap();
}

/// Creating a linked clone costs the same for a small and a huge base.
#[tokio::test]
async fn qemu_linked_clone_time_does_not_depend_on_base_size() {
    if !qemu_available() {
        return;
    }
    let host = TestHost::new();
    let h = &host.ctx;
    // 100 MiB really written, and 10 GiB sparse.
    let small = host.image("small.raw");
    write_boot_disk(&small, 0);
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&small)
            .unwrap();
        let chunk = vec![0x5Au8; MIB as usize];
        for _ in 0..100 {
            f.write_all(&chunk).unwrap();
        }
    }
    write_boot_disk(&host.image("huge.raw"), 10 * 1024 * MIB);
    // And a qcow2 base, the usual case.
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(&small)
        .arg(host.image("small.qcow2"))
        .status()
        .unwrap();
    assert!(status.success());

    let engine = tcg_engine();
    let mut times = Vec::new();
    for (uuid, image, hdd_mb) in [
        ("c-small", "small.raw", 128),
        ("c-huge", "huge.raw", 10 * 1024),
        ("c-qcow2", "small.qcow2", 128),
    ] {
        let t = Instant::now();
        engine
            .create_vm(h, &spec(uuid, image, hdd_mb), &NoProgress)
            .await
            .unwrap();
        let took = t.elapsed();
        let files = engine.vm_files(h, uuid).unwrap();
        let info = qemu_img_info(&files.disk);
        assert_eq!(
            info["backing-filename-format"],
            if image.ends_with("qcow2") {
                "qcow2"
            } else {
                "raw"
            }
        );
        let allocated =
            std::os::unix::fs::MetadataExt::blocks(&std::fs::metadata(&files.disk).unwrap()) * 512;
        assert!(allocated < MIB, "{uuid}: overlay holds {allocated} bytes");
        eprintln!(
            "MEASURE create_vm (linked clone) from {image}: {took:?}, overlay {allocated} bytes"
        );
        times.push(took);
    }
    for t in &times {
        assert!(*t < Duration::from_secs(3), "a linked clone took {t:?}");
    }
    let (a, b) = (times[0].as_secs_f64(), times[1].as_secs_f64());
    assert!(
        (a - b).abs() < 1.0,
        "100 MiB base: {a:.3} s, 10 GiB base: {b:.3} s"
    );
}

/// The KVM probe always decides, within its timeout, and says why.
#[tokio::test]
async fn qemu_kvm_probe_decides_in_time() {
    if !qemu_available() {
        return;
    }
    let t = Instant::now();
    let choice = probe_kvm(Path::new("qemu-system-x86_64"), PROBE_TIMEOUT).await;
    let took = t.elapsed();
    eprintln!(
        "MEASURE kvm probe: {:?} in {took:?}: {}",
        choice.accel, choice.reason
    );
    assert!(
        took < PROBE_TIMEOUT + Duration::from_secs(3),
        "probe took {took:?}"
    );
    assert!(!choice.reason.is_empty());
    if choice.accel == Accel::Tcg {
        assert!(choice.reason.contains("TCG"), "{}", choice.reason);
    }
}

#[tokio::test]
async fn qemu_host_status_reports_this_machine() {
    let host = TestHost::new();
    let s = tcg_engine().host_status(&host.ctx).await.unwrap();
    assert!(
        s.cpu_total > 0 && s.mem_total > 0 && s.hdd_total > 0,
        "{s:?}"
    );
    assert!(s.mem_usage <= s.mem_total && s.hdd_usage <= s.hdd_total);
    assert!((0.0..=100.0).contains(&s.cpu_usage));
}

/// A start that fails under KVM (here: a QEMU that crashes whenever it is
/// asked for KVM, in front of the real one) is retried under TCG and
/// succeeds; the engine stays on TCG and says why.
#[tokio::test]
async fn qemu_start_falls_back_to_tcg_when_kvm_fails() {
    if !qemu_available() {
        return;
    }
    let _one = ONE_VM_AT_A_TIME.lock().await;
    let host = TestHost::new();
    let h = &host.ctx;
    let wrapper = host.tmp.path().join("qemu-kvm-crashes");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = kvm ] && { echo 'kvm: crashed' >&2; exit 1; }; done\nexec qemu-system-x86_64 \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let engine = ironidc_engine::qemu::QemuEngine::new(ironidc_engine::qemu::QemuOptions {
        accel: Some(Accel::Kvm),
        qemu_binary: wrapper,
        ..ironidc_engine::qemu::QemuOptions::default()
    });
    write_boot_disk(&host.image("loop.raw"), MIB);
    engine
        .create_vm(h, &spec("vm-k", "loop.raw", 16), &NoProgress)
        .await
        .unwrap();
    assert_eq!(engine.start_accel().await, Accel::Kvm);
    engine
        .power(h, "vm-k", PowerAction::Start, LONG)
        .await
        .expect("the start succeeds under TCG");
    assert_eq!(engine.state(h, "vm-k").await.unwrap(), PowerState::Running);
    let files = engine.vm_files(h, "vm-k").unwrap();
    assert!(
        running_args(&files.pidfile).iter().any(|a| a == b"tcg"),
        "running under TCG"
    );
    assert_eq!(engine.start_accel().await, Accel::Tcg, "stays on TCG");
    let why = engine.kvm_failure().expect("the reason is recorded");
    assert!(why.contains("vm-k") && why.contains("TCG"), "{why}");
    assert!(engine.info().await.messages.contains(&why));
    engine
        .power(h, "vm-k", PowerAction::HardStop, LONG)
        .await
        .unwrap();
}
