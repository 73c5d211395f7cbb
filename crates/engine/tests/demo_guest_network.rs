//! Boots the demo image with real QEMU (TCG) on user-mode networking, with a NoCloud seed
//! as a second disk: the guest must take its hostname from the seed, get 10.0.2.15 by
//! DHCP, and serve a page naming itself on port 80 (reached through a host port forward).
//!
//! Cache of downloaded packages: `$IRONIDC_IMAGE_CACHE`, else `target/ironidc-image-cache`.
//! Without `qemu-system-x86_64` and `qemu-img` the test is skipped, unless `$CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironidc_engine::image::{
    build_demo_image, write_seed, DemoImageOptions, SeedFiles, DEMO_READY_MARKER,
};
use support::tools::qemu_available;
use support::{cache_dir, Qemu};

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);
const HOSTNAME: &str = "seeded-guest";
/// The address QEMU's user-mode network hands out first.
const GUEST_ADDRESS: &str = "10.0.2.15";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A linked clone of `base`: the guest writes to it, never to the built image.
fn linked_clone(base: &Path, clone: &Path) {
    let status = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(base)
        .arg(clone)
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img create failed: {status}");
}

fn start_qemu(disk: &Path, seed: &Path, serial: &Path, http_port: u16) -> Qemu {
    let child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "tcg", "-machine", "pc", "-m", "256", "-display", "none",
        ])
        .arg("-drive")
        .arg(format!("file={},if=virtio,format=qcow2", disk.display()))
        .arg("-drive")
        .arg(format!(
            "file={},format=raw,if=virtio,readonly=on",
            seed.display()
        ))
        .arg("-netdev")
        .arg(format!("user,id=n0,hostfwd=tcp:127.0.0.1:{http_port}-:80"))
        .args(["-device", "virtio-net-pci,netdev=n0"])
        .arg("-serial")
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .spawn()
        .expect("start qemu-system-x86_64");
    Qemu(child)
}

fn wait_for_ready(qemu: &mut Qemu, serial: &Path, started: Instant) -> (String, Duration) {
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if log.lines().any(|line| line.trim_end() == DEMO_READY_MARKER) {
            return (log, started.elapsed());
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

/// `GET /` over plain HTTP/1.0; the whole response, or why there is none.
fn http_get(port: u16) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: guest\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// Retries for a while: QEMU's forwarder accepts connections before the guest can answer.
fn fetch_page(port: u16, serial: &Path) -> String {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < HTTP_TIMEOUT {
        match http_get(port) {
            Ok(response) if response.starts_with("HTTP/1.") && response.contains(" 200 ") => {
                return response
            }
            Ok(response) => last = format!("response: {response:?}"),
            Err(err) => last = format!("error: {err}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(serial).unwrap_or_default();
    panic!("no page from the guest within {HTTP_TIMEOUT:?} (last {last}); serial log:\n{log}");
}

#[test]
fn seeded_guest_gets_dhcp_and_serves_its_name() {
    if !qemu_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("demo.qcow2");
    let opts = DemoImageOptions::new(cache_dir());
    build_demo_image(&image, &opts, &ironidc_core::engine::NoProgress)
        .unwrap_or_else(|err| panic!("build failed: {err:?}"));
    let disk = dir.path().join("vm.qcow2");
    linked_clone(&image, &disk);
    let seed = dir.path().join("seed.img");
    let files = SeedFiles {
        meta_data: format!("instance-id: t1\nlocal-hostname: {HOSTNAME}\n"),
        ..SeedFiles::default()
    };
    write_seed(&seed, &files).unwrap();

    let serial = dir.path().join("serial.log");
    let port = free_port();
    let started = Instant::now();
    let mut qemu = start_qemu(&disk, &seed, &serial, port);
    let (log, boot) = wait_for_ready(&mut qemu, &serial, started);
    eprintln!("guest ready after {boot:?}");
    let lines: Vec<&str> = log.lines().map(str::trim_end).collect();
    for wanted in [
        format!("IRONIDC-SEED hostname={HOSTNAME}"),
        format!("IRONIDC-NET eth0 {GUEST_ADDRESS}"),
    ] {
        assert!(
            lines.contains(&wanted.as_str()),
            "no `{wanted}` on the console; serial log:\n{log}"
        );
    }

    let response = fetch_page(port, &serial);
    assert!(
        response
            .lines()
            .any(|line| line.trim_end() == format!("IRONIDC-GUEST {HOSTNAME}")),
        "page does not name the guest:\n{response}"
    );
    eprintln!("page served {:?} after start", started.elapsed());
}
