//! What the demo-image tests share: where downloaded packages are cached,
//! whether QEMU is installed, and a guard that never lets a guest outlive
//! its test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `$IRONIDC_IMAGE_CACHE`, else `target/ironidc-image-cache`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("IRONIDC_IMAGE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ironidc-image-cache")
        })
}

pub fn qemu_available() -> bool {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Kills QEMU however the test ends, so no guest outlives it.
pub struct Qemu(pub Child);

impl Drop for Qemu {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
