//! FAT disk images made without root or loop devices: `mkfs.vfat` on a sparse file, files
//! copied in with `mcopy`. The demo's boot disk then gets its boot sector and loader from
//! `syslinux --install` (the mtools flavour works on image files) and is converted with
//! `qemu-img convert`; a NoCloud seed is used raw as it is.
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::ImageError;
use super::host_tool::{MCOPY, MKFS_VFAT, QEMU_IMG, SYSLINUX};

pub(crate) const MIB: u64 = 1024 * 1024;

/// Size, volume label and reserved room of a new FAT file system.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FatLayout<'a> {
    /// Size of the raw image in MiB.
    pub size_mb: u64,
    /// Volume label (at most 11 characters; FAT stores it upper case).
    pub label: &'a str,
    /// Room needed beyond the bytes of the files copied in: FAT tables, root directory,
    /// cluster slack, and files a boot loader installs itself.
    pub overhead_bytes: u64,
}

pub(crate) struct FatDisk {
    raw: PathBuf,
}

impl FatDisk {
    /// Make `raw`, a sparse file of `layout.size_mb` MiB readable by its owner only, and a
    /// FAT file system on it, after checking that `payload_bytes` of files will fit (a
    /// clearer error than mcopy's).
    pub fn create(
        raw: &Path,
        layout: &FatLayout<'_>,
        payload_bytes: u64,
    ) -> Result<Self, ImageError> {
        let size_mb = layout.size_mb;
        let needed_bytes = payload_bytes.saturating_add(layout.overhead_bytes);
        let size = size_mb
            .checked_mul(MIB)
            .filter(|size| *size >= needed_bytes);
        let size = size.ok_or(ImageError::DiskTooSmall {
            size_mb,
            needed_bytes,
        })?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(raw)
            .map_err(ImageError::io("create", raw))?;
        // set_len on a fresh file leaves a hole: the raw disk costs only what is written.
        file.set_len(size).map_err(ImageError::io("size", raw))?;
        drop(file);
        MKFS_VFAT.run(&[OsStr::new("-n"), OsStr::new(layout.label), raw.as_os_str()])?;
        Ok(FatDisk {
            raw: raw.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.raw
    }

    /// Write `contents` to the root directory of the file system as `name`. The bytes go
    /// through mcopy's stdin: no copy of them is left in another file.
    pub fn write_file(&self, name: &str, contents: &[u8]) -> Result<(), ImageError> {
        let mut cmd = self.mcopy()?;
        cmd.arg("-").arg(format!("::{name}"));
        MCOPY.output_with_input(cmd, contents).map(drop)
    }

    /// Copy a host file into the root directory of the file system as `name`.
    pub fn copy_in(&self, src: &Path, name: &str) -> Result<(), ImageError> {
        let mut cmd = self.mcopy()?;
        cmd.arg(src).arg(format!("::{name}"));
        MCOPY.output(cmd).map(drop)
    }

    /// `mcopy -i RAW`, ready for a source and a `::name` destination.
    fn mcopy(&self) -> Result<std::process::Command, ImageError> {
        let mut cmd = MCOPY.command()?;
        // The image has no partition table nor disk geometry for mtools to check.
        cmd.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&self.raw);
        Ok(cmd)
    }

    /// Write syslinux's boot sector and loader; it reads `syslinux.cfg` at boot.
    pub fn install_syslinux(&self) -> Result<(), ImageError> {
        SYSLINUX
            .run(&[OsStr::new("--install"), self.raw.as_os_str()])
            .map(drop)
    }

    /// Write the disk as a qcow2 image at `dest`.
    pub fn convert_to_qcow2(&self, dest: &Path) -> Result<(), ImageError> {
        QEMU_IMG
            .run(&[
                OsStr::new("convert"),
                OsStr::new("-f"),
                OsStr::new("raw"),
                OsStr::new("-O"),
                OsStr::new("qcow2"),
                self.raw.as_os_str(),
                dest.as_os_str(),
            ])
            .map(drop)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_disk_too_small_for_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        let layout = FatLayout {
            size_mb: 8,
            label: "TEST",
            overhead_bytes: 2 * MIB,
        };
        let err = FatDisk::create(&raw, &layout, 7 * MIB).err().unwrap();
        assert!(
            matches!(err, ImageError::DiskTooSmall { size_mb: 8, .. }),
            "{err}"
        );
        assert!(!raw.exists(), "nothing is created before the check");
    }
}
