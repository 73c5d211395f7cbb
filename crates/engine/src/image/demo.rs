//! The demo image: a Debian cloud kernel and a busybox userland on a syslinux-booted FAT
//! disk. It boots under QEMU TCG to a shell on ttyS0 in seconds, prints
//! `IRONIDC-DEMO-READY` on the serial console when up, and powers off on an ACPI power
//! button press (QMP `system_powerdown`).
//!
//! What the guest does, and the console lines it prints for whoever watches ttyS0 (tests,
//! the control plane; the same list heads `guest/rcS.sh`):
//! - a NoCloud seed disk (see [`super::write_seed`]) names it (`IRONIDC-SEED
//!   hostname=NAME`; the seed stays mounted at /run/cidata), and the `write_files`
//!   (base64 only) and `runcmd` of its cloud-config `user-data` are applied, each runcmd
//!   entry started in the background after the network is up (`IRONIDC-RUNCMD PROGRAM`);
//! - its boot disk (FAT, label IRONIDC) is mounted read-write, synchronously, at
//!   /mnt/disk (`IRONIDC-DISK /mnt/disk`): files there live in the VM's disk image;
//! - its NICs (virtio-net) get addresses by DHCP (`IRONIDC-NET eth0 ADDRESS`);
//! - Debian's real `qemu-ga` serves the virtio-serial port `org.qemu.guest_agent.0`
//!   (`IRONIDC-AGENT up`, or `IRONIDC-AGENT failed: WHY`); a password set through it
//!   lands in /etc/shadow as a SHA-512 crypt hash;
//! - a virtio-scsi CD-ROM can be read (`mount -t iso9660 /dev/sr0 /mnt/cdrom`; nothing
//!   mounts it by itself);
//! - busybox httpd serves a page with the line `IRONIDC-GUEST HOSTNAME` on port 80;
//! - `IRONIDC-DEMO-READY` comes last.
use std::path::{Path, PathBuf};

use ironidc_core::engine::ProgressSink;

use super::debian_package::PackageCache;
use super::elf;
use super::error::ImageError;
use super::fat_disk::{FatDisk, FatLayout, MIB};
use super::guest_agent::agent_files;
use super::initramfs::write_demo_initramfs;
use super::kernel_modules::Kernel;
use super::scratch::Scratch;

pub const DEFAULT_DEMO_DISK_MB: u64 = 64;

/// The line the guest prints on its serial console once booted (after its services
/// started and its NICs got their DHCP leases, or 10 s passed waiting for them).
pub const DEMO_READY_MARKER: &str = "IRONIDC-DEMO-READY";

/// Revision of the demo guest's contents (scripts, modules, layout). Bumped whenever
/// they change, so caches of built images can be keyed by it and never serve a stale one.
pub const DEMO_IMAGE_REVISION: u32 = 3;

const VOLUME_LABEL: &str = "IRONIDC";

/// Room left for the FAT tables, root directory and syslinux's own files (ldlinux.sys,
/// ldlinux.c32: about 200 KiB) beyond the files we copy in.
const BOOT_DISK_OVERHEAD: u64 = 2 * MIB;

/// A meta package: it names the current cloud kernel through its dependency.
const KERNEL_META_PACKAGE: &str = "linux-image-cloud-amd64";
const BUSYBOX_PACKAGE: &str = "busybox-static";
/// Where the statically linked busybox lives in its package, and on hosts that have it.
const BUSYBOX_IN_PACKAGE: &str = "bin/busybox";
const HOST_BUSYBOX: &[&str] = &["/usr/bin/busybox", "/bin/busybox"];

/// Modules the guest loads, in this order (each after its dependencies). Modules the kernel
/// has built in are skipped; one it has in neither form fails the build.
const GUEST_MODULES: &[&str] = &[
    "virtio_pci",     // transport of every virtio device below
    "virtio_blk",     // disks
    "virtio_net",     // NICs
    "virtio_console", // serial ports (the guest agent's channel)
    "vfat",           // file system of the boot disk and of NoCloud seeds
    // vfat's code page and character sets: the kernel cannot load them on demand at mount
    // time (the guest has no modprobe database), so they are loaded up front.
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
    "ext4",        // data disks
    "virtio_scsi", // the CD-ROM's controller (virtio-scsi-pci)
    "sr_mod",      // SCSI CD-ROMs: /dev/sr0
    "isofs",       // ISO 9660, the CD's file system
    "button",      // ACPI power button, for QMP system_powerdown
    "evdev",       // /dev/input/event*, which acpid reads
];

const SYSLINUX_CFG: &str = include_str!("guest/syslinux.cfg");

#[derive(Debug, Clone)]
pub struct DemoImageOptions {
    /// Cache for downloaded `.deb`s and unpacked packages, reused between builds: a second
    /// build with the same kernel needs no network.
    pub work_dir: PathBuf,
    /// Virtual size of the FAT disk in MiB.
    pub size_mb: u64,
}

impl DemoImageOptions {
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        DemoImageOptions {
            work_dir: work_dir.into(),
            size_mb: DEFAULT_DEMO_DISK_MB,
        }
    }
}

#[derive(Debug, Clone)]
pub struct DemoImage {
    pub qcow2_path: PathBuf,
    /// `uname -r` of the guest kernel, e.g. `6.1.0-56-cloud-amd64`.
    pub kernel_version: String,
}

/// Build the demo image at `out_file` (qcow2). Blocking: call it from `spawn_blocking`.
///
/// Everything is assembled in a scratch directory next to `out_file` and renamed into
/// place at the end, so a failed build leaves no half-written image.
pub fn build_demo_image(
    out_file: &Path,
    opts: &DemoImageOptions,
    progress: &dyn ProgressSink,
) -> Result<DemoImage, ImageError> {
    let out_dir = output_dir(out_file)?;
    let cache = PackageCache::open(&opts.work_dir)?;

    progress.report("resolving packages", 0);
    let kernel_package = cache.kernel_behind(KERNEL_META_PACKAGE)?;
    progress.report("downloading kernel", 5);
    let kernel = Kernel::in_package(&cache.unpacked(&kernel_package)?, &kernel_package.name)?;
    progress.report("downloading busybox", 30);
    let busybox = busybox_binary(&cache)?;
    progress.report("collecting the guest agent", 35);
    let agent = agent_files(&cache)?;
    progress.report("resolving kernel modules", 40);
    let modules = kernel.plan_modules(GUEST_MODULES)?;
    tracing::debug!(
        load = ?modules.load_order.iter().map(|m| &m.name).collect::<Vec<_>>(),
        builtin = ?modules.builtin,
        "demo guest modules"
    );

    let scratch = Scratch::new_dir(out_dir, "demo-image")?;
    progress.report("writing initramfs", 50);
    let initrd = scratch.path().join("initrd");
    let initrd_bytes = write_demo_initramfs(&initrd, &busybox, &modules.load_order, &agent)?;
    let syslinux_cfg = scratch.path().join("syslinux.cfg");
    std::fs::write(&syslinux_cfg, SYSLINUX_CFG).map_err(ImageError::io("write", &syslinux_cfg))?;

    progress.report("making FAT file system", 60);
    let kernel_bytes = std::fs::metadata(&kernel.vmlinuz)
        .map_err(ImageError::io("inspect", &kernel.vmlinuz))?
        .len();
    let payload = kernel_bytes + initrd_bytes + SYSLINUX_CFG.len() as u64;
    let layout = FatLayout {
        size_mb: opts.size_mb,
        label: VOLUME_LABEL,
        overhead_bytes: BOOT_DISK_OVERHEAD,
    };
    let disk = FatDisk::create(&scratch.path().join("disk.raw"), &layout, payload)?;
    progress.report("copying kernel and initramfs", 65);
    disk.copy_in(&kernel.vmlinuz, "vmlinuz")?;
    disk.copy_in(&initrd, "initrd")?;
    disk.copy_in(&syslinux_cfg, "syslinux.cfg")?;
    progress.report("installing syslinux", 80);
    disk.install_syslinux()?;

    progress.report("converting to qcow2", 90);
    let qcow2 = scratch.path().join("disk.qcow2");
    disk.convert_to_qcow2(&qcow2)?;
    std::fs::rename(&qcow2, out_file).map_err(ImageError::io("rename into place", out_file))?;
    drop(scratch);
    progress.report("done", 100);

    Ok(DemoImage {
        qcow2_path: out_file.to_path_buf(),
        kernel_version: kernel.version,
    })
}

/// The directory an image goes to (scratch files are made there so the final rename
/// stays on one file system).
pub(super) fn output_dir(out_file: &Path) -> Result<&Path, ImageError> {
    let bad = || ImageError::BadOutputPath {
        path: out_file.to_path_buf(),
    };
    out_file.file_name().ok_or_else(bad)?;
    let parent = out_file.parent().ok_or_else(bad)?;
    Ok(if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    })
}

/// Busybox from Debian's `busybox-static` package; when that cannot be had (no network,
/// no package lists), the host's own busybox if it is statically linked too.
fn busybox_binary(cache: &PackageCache) -> Result<PathBuf, ImageError> {
    let from_package = cache.candidate(BUSYBOX_PACKAGE).and_then(|package| {
        let path = cache.unpacked(&package)?.join(BUSYBOX_IN_PACKAGE);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ImageError::MissingInPackage {
                package: package.name,
                what: BUSYBOX_IN_PACKAGE.into(),
            })
        }
    });
    let err = match from_package {
        Ok(path) => return Ok(path),
        Err(err) => err,
    };
    let host = HOST_BUSYBOX
        .iter()
        .map(PathBuf::from)
        .find(|path| std::fs::read(path).is_ok_and(|bytes| elf::is_static_executable(&bytes)));
    match host {
        Some(path) => {
            tracing::warn!(%err, busybox = %path.display(), "busybox-static unavailable, using the host's busybox");
            Ok(path)
        }
        None => Err(err),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn output_dir_of_a_bare_file_name_is_the_current_directory() {
        assert_eq!(output_dir(Path::new("demo.qcow2")).unwrap(), Path::new("."));
        assert_eq!(
            output_dir(Path::new("/var/lib/x/demo.qcow2")).unwrap(),
            Path::new("/var/lib/x")
        );
        assert!(output_dir(Path::new("/")).is_err());
    }
}
