//! Tiny guests: a raw disk whose boot sector prints `BOOT_MESSAGE` on COM1
//! and then runs a tail of its own; no OS, so nothing in it ever answers
//! ACPI, the guest agent or a hot-unplug request unless its tail does. Also
//! the ISO images a guest's CD-ROM gets.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub const BOOT_MESSAGE: &str = "IRONIDC-BOOT-OK";

/// A boot sector that prints `BOOT_MESSAGE` on COM1 and loops forever. It
/// ignores ACPI, so a soft stop must time out; the loop keeps the vCPU busy,
/// so its CPU time grows.
///
/// ```text
/// cli; cld; xor ax,ax; mov ds,ax; mov si,msg
/// next: lodsb; test al,al; jz done; mov dx,0x3f8; out dx,al; jmp next
/// done: jmp done
/// msg: db "IRONIDC-BOOT-OK",13,10,0
/// ```
pub fn loop_sector() -> [u8; 512] {
    sector(&[0xEB, 0xFE]) // done: jmp $
}

/// The printing prologue (see `loop_sector`) followed by `tail` (what to do
/// after printing).
pub fn sector(tail: &[u8]) -> [u8; 512] {
    const PROLOGUE_LEN: usize = 20;
    let msg_at = PROLOGUE_LEN + tail.len();
    let msg_addr = (0x7C00 + msg_at) as u16;
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
    code.extend_from_slice(tail);
    code.extend_from_slice(format!("{BOOT_MESSAGE}\r\n\0").as_bytes());
    let mut s = [0u8; 512];
    s[..code.len()].copy_from_slice(&code);
    s[510] = 0x55;
    s[511] = 0xAA;
    s
}

/// A raw boot disk of `size` bytes running `loop_sector` (sparse after the
/// boot sector).
pub fn write_boot_disk(path: &Path, size: u64) {
    write_disk(path, &loop_sector(), size);
}

/// A raw disk of `size` bytes (at least the sector) that boots `sector`.
pub fn write_disk(path: &Path, sector: &[u8; 512], size: u64) {
    let mut f = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut f, sector).unwrap();
    f.set_len(size.max(512)).unwrap();
}

/// Wait until the serial log holds `count` boot messages; returns the time.
pub async fn wait_for_boots(serial: &Path, count: usize, timeout: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(serial).unwrap_or_default();
        if log.matches(BOOT_MESSAGE).count() >= count {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "guest did not print {count}x {BOOT_MESSAGE} within {timeout:?}; log: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An ISO 9660 image with volume label `label`, holding one file `name`
/// with `content` (needs `xorriso`).
pub fn make_iso(iso: &Path, label: &str, name: &str, content: &str) {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join(name), content).unwrap();
    let out = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", label, "-o"])
        .arg(iso)
        .arg(tree.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "xorriso: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
