//! Builds the demo image and boots it with real QEMU (TCG): the guest must print its ready
//! marker on the serial console, and power off by itself on QMP `system_powerdown`.
//!
//! Cache of downloaded packages: `$IRONIDC_IMAGE_CACHE`, else `target/ironidc-image-cache`.
//! Without `qemu-system-x86_64` and `qemu-img` the test is skipped, unless `$CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ironidc_core::engine::ProgressSink;
use ironidc_engine::image::{build_demo_image, DemoImageOptions, ImageError, DEMO_READY_MARKER};
use support::tools::qemu_available;
use support::{cache_dir, Qemu};

const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
const POWEROFF_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct RecordedProgress(Mutex<Vec<(String, u8)>>);

impl ProgressSink for RecordedProgress {
    fn report(&self, step: &str, percent: u8) {
        eprintln!("[{percent:3}%] {step}");
        self.0.lock().unwrap().push((step.to_string(), percent));
    }
}

fn start_qemu(image: &Path, qmp: &Path, serial: &Path) -> Qemu {
    let child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "256", "-display", "none"])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", image.display()))
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", qmp.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64");
    Qemu(child)
}

fn wait_for_marker(qemu: &mut Qemu, serial: &Path, started: Instant) -> Duration {
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if log.lines().any(|line| line.trim_end() == DEMO_READY_MARKER) {
            return started.elapsed();
        }
        if let Some(status) = qemu.0.try_wait().unwrap() {
            panic!("QEMU exited ({status}) before the guest was ready; serial log:\n{log}");
        }
        assert!(
            started.elapsed() < BOOT_TIMEOUT,
            "no {DEMO_READY_MARKER} within {BOOT_TIMEOUT:?}; serial log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal QMP exchange: read the greeting, then each command's reply (skipping events).
fn qmp_powerdown(socket: &Path) {
    let stream = UnixStream::connect(socket).expect("connect to QMP");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("\"QMP\""), "not a QMP greeting: {line}");
    for command in ["qmp_capabilities", "system_powerdown"] {
        writeln!(writer, "{}", serde_json::json!({ "execute": command })).unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
            if reply.get("event").is_some() {
                continue;
            }
            assert!(reply.get("return").is_some(), "{command} failed: {line}");
            break;
        }
    }
}

fn wait_for_exit(qemu: &mut Qemu, serial: &Path) -> Duration {
    let asked = Instant::now();
    loop {
        if let Some(status) = qemu.0.try_wait().unwrap() {
            assert!(status.success(), "QEMU exited with {status}");
            return asked.elapsed();
        }
        if asked.elapsed() > POWEROFF_TIMEOUT {
            let log = std::fs::read_to_string(serial).unwrap_or_default();
            panic!("guest did not power off within {POWEROFF_TIMEOUT:?}; serial log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn demo_image_boots_to_marker_and_powers_off() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    let progress = RecordedProgress::default();
    let opts = DemoImageOptions::new(cache_dir());
    let build_started = Instant::now();
    let built = build_demo_image(&image, &opts, &progress)
        .unwrap_or_else(|err| panic!("build failed: {err:?}"));
    eprintln!(
        "built {} (kernel {}) in {:?}",
        built.qcow2_path.display(),
        built.kernel_version,
        build_started.elapsed()
    );
    assert_eq!(built.qcow2_path, image);
    assert_eq!(
        progress.0.lock().unwrap().last().map(|(_, p)| *p),
        Some(100)
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["demo.qcow2"],
        "scratch files left next to the image"
    );

    let (qmp, serial) = (dir.path().join("qmp.sock"), dir.path().join("serial.log"));
    let started = Instant::now();
    let mut qemu = start_qemu(&image, &qmp, &serial);
    let boot = wait_for_marker(&mut qemu, &serial, started);
    eprintln!("guest ready after {boot:?}");
    qmp_powerdown(&qmp);
    let poweroff = wait_for_exit(&mut qemu, &serial);
    eprintln!("guest powered off {poweroff:?} after system_powerdown");
}

#[test]
fn demo_image_that_fails_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    let opts = DemoImageOptions {
        work_dir: cache_dir(),
        size_mb: 4,
    };
    let err = build_demo_image(&image, &opts, &ironidc_core::engine::NoProgress).unwrap_err();
    match err {
        ImageError::DiskTooSmall { size_mb: 4, .. } => {}
        ImageError::MissingTool { .. } | ImageError::UnknownPackage { .. }
            if std::env::var_os("CI").is_none() =>
        {
            eprintln!("skipping: cannot fetch the demo packages here: {err}");
            return;
        }
        other => panic!("expected DiskTooSmall, got {other:?}"),
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
