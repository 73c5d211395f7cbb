//! Building bootable base images.
//!
//! [`build_demo_image`] makes the demo guest (Debian cloud kernel + busybox initramfs on a
//! syslinux FAT disk, as qcow2) from Debian packages, with host tools only: no root, no
//! loop devices. The guest's own scripts live under `guest/`.
mod cpio;
mod debian_package;
mod demo;
mod elf;
mod error;
mod fat_disk;
mod host_tool;
mod initramfs;
mod kernel_modules;
mod scratch;

pub use demo::{
    build_demo_image, DemoImage, DemoImageOptions, DEFAULT_DEMO_DISK_MB, DEMO_READY_MARKER,
};
pub use error::ImageError;
