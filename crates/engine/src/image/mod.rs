//! Building bootable base images.
//!
//! [`build_demo_image`] makes the demo guest (Debian cloud kernel + busybox initramfs with
//! Debian's qemu-ga on a syslinux FAT disk, as qcow2) from Debian packages, with host
//! tools only: no root, no loop devices. The guest's own scripts live under `guest/`.
//!
//! [`write_seed`] makes NoCloud seeds: `CIDATA` FAT images with an instance's cloud-init
//! files, which the demo guest reads its hostname, `write_files` and `runcmd` from.
mod cloud_init_seed;
mod cpio;
mod debian_package;
mod demo;
mod elf;
mod error;
mod fat_disk;
mod guest_agent;
mod host_tool;
mod initramfs;
mod kernel_modules;
mod scratch;
mod shared_libs;

pub use cloud_init_seed::{write_seed, SeedFiles, SEED_VOLUME_LABEL};
pub use demo::{
    build_demo_image, DemoImage, DemoImageOptions, DEFAULT_DEMO_DISK_MB, DEMO_IMAGE_REVISION,
    DEMO_READY_MARKER,
};
pub use error::ImageError;
