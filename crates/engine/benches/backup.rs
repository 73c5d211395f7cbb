//! Backup of a 1 GiB system disk: wall time, throughput and bytes written,
//! for `backup_create` of a running VM (QMP blockdev-backup, the guest keeps
//! running), of a stopped VM (qemu-img convert -c) and for `backup_restore`.
//!
//! Two disks: "full", 1023 MiB written in the VM's overlay (511 MiB of one
//! repeated byte, then 512 MiB of pseudo-random data: a 64 MiB random block
//! written 8 times; qcow2 compresses each 64 KiB cluster on its own, so the
//! repetition gains nothing), the first MiB being the base image's boot
//! sector; and "empty", a 1 GiB linked clone never written.
//!
//! "MiB/s" is the disk's virtual size over the wall time. "written" is what
//! the resulting file occupies on the host (st_blocks × 512): the backup
//! file, or the restored disk. For the live backup the writes happen inside
//! QEMU, so the file is the only measure. The source disk was just written
//! and sits in the page cache: the figures are CPU (zlib) bound, not disk
//! bound.
//!
//! Run: `cargo bench -p ironidc-engine --bench backup` (needs
//! qemu-system-x86_64, qemu-img and qemu-io).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ironidc_core::engine::{Engine, HostContext, NoProgress, PowerAction, VmSpec};
use ironidc_engine::qemu::{Accel, QemuEngine, QemuOptions};

const MIB: u64 = 1024 * 1024;
const DISK_MB: u64 = 1024;

struct Row {
    disk: &'static str,
    operation: &'static str,
    wall: Duration,
    written: u64,
}

fn main() {
    let ok = |p: &str| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(ok("qemu-system-x86_64") && ok("qemu-img") && ok("qemu-io")) {
        eprintln!("SKIPPED: needs qemu-system-x86_64, qemu-img and qemu-io");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    rt.block_on(async {
        rows.extend(measure("full", true).await);
        rows.extend(measure("empty", false).await);
    });
    println!();
    println!(
        "{:<6} {:<18} {:>8} {:>9} {:>14} {:>7}",
        "disk", "operation", "wall s", "MiB/s", "written bytes", "ratio"
    );
    for r in &rows {
        let secs = r.wall.as_secs_f64();
        println!(
            "{:<6} {:<18} {:>8.2} {:>9.1} {:>14} {:>6.1}%",
            r.disk,
            r.operation,
            secs,
            DISK_MB as f64 / secs,
            r.written,
            r.written as f64 * 100.0 / (DISK_MB * MIB) as f64
        );
    }
}

async fn measure(label: &'static str, fill: bool) -> Vec<Row> {
    let tmp = tempfile::tempdir().unwrap();
    let host = HostContext {
        hs_name: "bench".into(),
        vms_dir: tmp.path().join("vms"),
        images_dir: tmp.path().join("images"),
        backups_dir: tmp.path().join("backups"),
        isos_dir: tmp.path().join("isos"),
    };
    std::fs::create_dir_all(&host.images_dir).unwrap();
    write_boot_image(&host.images_dir.join("boot.raw"));
    let engine = QemuEngine::new(QemuOptions {
        accel: Some(Accel::Tcg),
        ..QemuOptions::default()
    });
    let uuid = format!("bench-{label}");
    let spec = VmSpec {
        uuid: uuid.clone(),
        cpu_num: 1,
        mem_mb: 64,
        hdd_mb: DISK_MB,
        os_image: "boot.raw".into(),
        nics: Vec::new(),
        iso: None,
    };
    engine.create_vm(&host, &spec, &NoProgress).await.unwrap();
    let files = engine.vm_files(&host, &uuid).unwrap();
    if fill {
        let t = Instant::now();
        fill_disk(&files.disk, tmp.path());
        eprintln!("{label}: disk filled in {:?}", t.elapsed());
    }
    let _guard = KillOnDrop(files.pidfile.clone());
    let folder = host.backups_dir.join(&uuid);
    let mut rows = Vec::new();

    // Running VM (a TCG guest spinning in its boot sector).
    engine
        .power(&host, &uuid, PowerAction::Start, Duration::from_secs(60))
        .await
        .unwrap();
    let t = Instant::now();
    engine
        .backup_create(&host, &uuid, "live", &NoProgress)
        .await
        .unwrap();
    rows.push(Row {
        disk: label,
        operation: "backup (running)",
        wall: t.elapsed(),
        written: allocated(&folder.join("live.qcow2")),
    });
    engine
        .power(&host, &uuid, PowerAction::HardStop, Duration::from_secs(60))
        .await
        .unwrap();

    // Stopped VM.
    let t = Instant::now();
    engine
        .backup_create(&host, &uuid, "cold", &NoProgress)
        .await
        .unwrap();
    rows.push(Row {
        disk: label,
        operation: "backup (stopped)",
        wall: t.elapsed(),
        written: allocated(&folder.join("cold.qcow2")),
    });

    // Restore (stopped), then check the result.
    let t = Instant::now();
    engine
        .backup_restore(&host, &uuid, "live", &NoProgress)
        .await
        .unwrap();
    rows.push(Row {
        disk: label,
        operation: "restore",
        wall: t.elapsed(),
        written: allocated(&files.disk),
    });
    let same = Command::new("qemu-img")
        .args(["compare", "-q", "-f", "qcow2", "-F", "qcow2"])
        .arg(folder.join("cold.qcow2"))
        .arg(&files.disk)
        .status()
        .unwrap()
        .success();
    assert!(
        same,
        "{label}: restored disk differs from the stopped backup"
    );
    engine.delete_vm(&host, &uuid).await.unwrap();
    rows
}

/// 1 MiB raw image: a boot sector that spins (`jmp $`), the rest zero.
fn write_boot_image(path: &Path) {
    let mut sector = [0u8; 512];
    sector[0] = 0xEB;
    sector[1] = 0xFE;
    sector[510] = 0x55;
    sector[511] = 0xAA;
    let mut f = std::fs::File::create(path).unwrap();
    std::io::Write::write_all(&mut f, &sector).unwrap();
    f.set_len(MIB).unwrap();
}

/// 511 MiB of one byte from 1 MiB, then 512 MiB pseudo-random.
fn fill_disk(disk: &Path, scratch: &Path) {
    let random = scratch.join("random.bin");
    write_random(&random, 64 * MIB as usize);
    let mut commands = vec![format!("write -P 0x5a {} {}", MIB, 511 * MIB)];
    for i in 0..8 {
        commands.push(format!(
            "write -s {} {} {}",
            random.display(),
            (512 + i * 64) * MIB,
            64 * MIB
        ));
    }
    let mut cmd = Command::new("qemu-io");
    cmd.args(["-f", "qcow2"]);
    for c in &commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.arg(disk).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&random).unwrap();
}

fn write_random(path: &Path, len: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
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

fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// SIGKILLs the VM's QEMU if the bench panics while it runs.
struct KillOnDrop(std::path::PathBuf);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Ok(text) = std::fs::read_to_string(&self.0) else {
            return;
        };
        let Ok(pid) = text.trim().parse::<i32>() else {
            return;
        };
        let is_qemu = std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a.starts_with(b"guest=bench-")));
        if is_qemu {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}
