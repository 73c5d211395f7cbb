//! A BIOS-bootable FAT disk made without root or loop devices: `mkfs.vfat` on a sparse
//! file, files copied in with `mcopy`, boot sector and loader written by `syslinux
//! --install` (the mtools flavour works on image files), then `qemu-img convert`.
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::error::ImageError;
use super::host_tool::{MCOPY, MKFS_VFAT, QEMU_IMG, SYSLINUX};

const MIB: u64 = 1024 * 1024;

/// Room left for the FAT tables, root directory and syslinux's own files (ldlinux.sys,
/// ldlinux.c32: about 200 KiB) beyond the files we copy in.
const FAT_OVERHEAD: u64 = 2 * MIB;

const VOLUME_LABEL: &str = "IRONIDC";

pub(crate) struct FatDisk {
    raw: PathBuf,
}

impl FatDisk {
    /// Make `raw`, a sparse file of `size_mb` MiB, and a FAT file system on it, after
    /// checking that `payload_bytes` of files will fit (a clearer error than mcopy's).
    pub fn create(raw: &Path, size_mb: u64, payload_bytes: u64) -> Result<Self, ImageError> {
        let needed_bytes = payload_bytes + FAT_OVERHEAD;
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
            .open(raw)
            .map_err(ImageError::io("create", raw))?;
        // set_len on a fresh file leaves a hole: the raw disk costs only what is written.
        file.set_len(size).map_err(ImageError::io("size", raw))?;
        drop(file);
        MKFS_VFAT.run(&[OsStr::new("-n"), OsStr::new(VOLUME_LABEL), raw.as_os_str()])?;
        Ok(FatDisk {
            raw: raw.to_path_buf(),
        })
    }

    /// Copy a host file into the root directory of the file system as `name`.
    pub fn copy_in(&self, src: &Path, name: &str) -> Result<(), ImageError> {
        let mut cmd = MCOPY.command()?;
        // The image has no partition table nor disk geometry for mtools to check.
        cmd.env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&self.raw)
            .arg(src)
            .arg(format!("::{name}"));
        MCOPY.output(cmd).map(drop)
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
        let err = FatDisk::create(&raw, 8, 7 * MIB).err().unwrap();
        assert!(
            matches!(err, ImageError::DiskTooSmall { size_mb: 8, .. }),
            "{err}"
        );
        assert!(!raw.exists(), "nothing is created before the check");
    }
}
